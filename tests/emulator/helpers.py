"""Shortcuts shared by the emulator tests."""


def opts(account=None, key=None):
    """Request options for the stripe client."""
    out = {}
    if account:
        out["stripe_account"] = account
    if key:
        out["idempotency_key"] = key
    return out


def bts(client, account=None, **params):
    """All balance transactions of an account, oldest first, as plain tuples."""
    page = client.v1.balance_transactions.list(params=dict(limit=100, **params),
                                               options=opts(account))
    rows = [(bt.type, bt.amount, bt.fee, bt.net, bt.reporting_category, bt.source[:3])
            for bt in page.auto_paging_iter()]
    return list(reversed(rows))


def balance(client, account=None, currency="usd"):
    """(available, pending) in one currency."""
    bal = client.v1.balance.retrieve(options=opts(account))
    avail = sum(b.amount for b in bal.available if b.currency == currency)
    pend = sum(b.amount for b in bal.pending if b.currency == currency)
    return avail, pend


def check_balance_matches(client, account=None):
    """GET /v1/balance equals the balance transactions summed by status and currency."""
    sums = {}
    page = client.v1.balance_transactions.list(params={"limit": 100}, options=opts(account))
    for bt in page.auto_paging_iter():
        row = sums.setdefault(bt.currency, [0, 0])
        row[0 if bt.status == "available" else 1] += bt.net
    bal = client.v1.balance.retrieve(options=opts(account))
    got = {}
    for b in bal.available:
        got.setdefault(b.currency, [0, 0])[0] = b.amount
    for b in bal.pending:
        got.setdefault(b.currency, [0, 0])[1] = b.amount
    for cur, row in sums.items():
        assert got[cur] == row, (cur, got, sums)


def pay(client, amount=1000, pm="pm_card_visa", currency="usd", account=None, key=None,
        **params):
    """Create and confirm a PaymentIntent."""
    return client.v1.payment_intents.create(params=dict(
        amount=amount, currency=currency, payment_method=pm, confirm=True, **params),
        options=opts(account, key))


def event_types(client, account=None, **params):
    """Event types, oldest first."""
    page = client.v1.events.list(params=dict(limit=100, **params), options=opts(account))
    return [e.type for e in reversed(list(page.auto_paging_iter()))]
