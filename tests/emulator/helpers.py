"""Shortcuts shared by the emulator tests."""

# The Stripe under test (an EmulatorTarget or a StripeTarget), set by the `client` fixture.
TARGET = None


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
        settle=True, **params):
    """Create and confirm a PaymentIntent (card only: no redirect-based payment methods, so
    no return_url is needed); with `settle`, wait until its charge has settled (its balance
    transaction, transfer and application fee exist)."""
    params.setdefault("automatic_payment_methods", {"enabled": True, "allow_redirects": "never"})
    pi = client.v1.payment_intents.create(params=dict(
        amount=amount, currency=currency, payment_method=pm, confirm=True, **params),
        options=opts(account, key))
    if settle and pi.status == "succeeded":
        charge = pi.latest_charge
        TARGET.settle(client, charge if isinstance(charge, str) else charge.id, account)
        expand = params.get("expand")
        pi = client.v1.payment_intents.retrieve(
            pi.id, params={"expand": expand} if expand else None, options=opts(account))
    return pi


def event_types(client, account=None, **params):
    """Event types, oldest first."""
    page = client.v1.events.list(params=dict(limit=100, **params), options=opts(account))
    return [e.type for e in reversed(list(page.auto_paging_iter()))]
