"""GET /v1/balance and the balance transaction list, both derived from the clock."""
from ..routes import route
from ..store import created_filter, paginate
from .common import show


def balance_object(emu, account):
    """The Balance of an account: sums of its balance transactions by status and currency."""
    sums = emu.balance(account) or {"usd": [0, 0]}

    def rows(i):
        return [{"amount": v[i], "currency": c, "source_types": {"card": v[i]}}
                for c, v in sorted(sums.items())]
    return {"object": "balance", "available": rows(0), "pending": rows(1),
            "connect_reserved": [{"amount": 0, "currency": c} for c in sorted(sums)],
            "livemode": False}


@route("GET", "/v1/balance")
def retrieve_balance(ctx):
    """GET /v1/balance."""
    return balance_object(ctx.emu, ctx.account)


def _list(ctx, url):
    p = ctx.params.check("limit", "starting_after", "ending_before", "created",
                         "available_on", "type", "source", "payout", "currency")
    kind, source = p.str("type"), p.str("source")
    payout, cur = p.str("payout"), p.str("currency")
    when, avail = created_filter(p), created_filter(p, "available_on")
    items = [bt for bt in ctx.emu.store.all("balance_transaction", ctx.account)
             if when(bt["created"]) and avail(bt["available_on"])
             and (kind is None or bt["type"] == kind)
             and (source is None or bt["source"] == source)
             and (payout is None or bt["_payout"] == payout)
             and (cur is None or bt["currency"] == cur.lower())]
    return paginate(items, p, url, ctx.emu.render)


@route("GET", "/v1/balance_transactions")
def list_balance_transactions(ctx):
    """GET /v1/balance_transactions with created / type / source / payout / currency."""
    return _list(ctx, "/v1/balance_transactions")


@route("GET", "/v1/balance/history")
def list_balance_history(ctx):
    """GET /v1/balance/history (the older name of the same list)."""
    return _list(ctx, "/v1/balance/history")


@route("GET", "/v1/balance_transactions/<tid>")
def retrieve_balance_transaction(ctx):
    """GET /v1/balance_transactions/{id}."""
    return show(ctx, ctx.emu.store.get("balance_transaction", ctx.args["tid"], ctx.account,
                                       "balance transaction"))


@route("GET", "/v1/balance/history/<tid>")
def retrieve_balance_history(ctx):
    """GET /v1/balance/history/{id}."""
    return retrieve_balance_transaction(ctx)


def _balance_settings(emu):
    return {"object": "balance_settings", "payments": {
        "debit_negative_balances": emu.debit_negative_balances,
        "payouts": {"minimum_balance_by_currency": {}, "schedule": {"interval": "daily"},
                    "statement_descriptor": None, "status": "enabled",
                    "automatic_transfer_rules_by_currency": {}},
        "settlement_timing": {"delay_days": emu.available_after // 86400,
                              "delay_days_override": None, "start_of_day": None}}}


@route("GET", "/v1/balance_settings")
def retrieve_balance_settings(ctx):
    """GET /v1/balance_settings (the platform's; the emulator models the payments part)."""
    return _balance_settings(ctx.emu)


@route("POST", "/v1/balance_settings")
def update_balance_settings(ctx):
    """POST /v1/balance_settings: payments[debit_negative_balances] (whether Stripe may debit
    the bank account when the balance cannot cover a refund; refunds wait when it may not)."""
    p = ctx.params.check("payments")
    payments = p.sub("payments")
    for key in payments.data:
        if key != "debit_negative_balances":
            from ..errors import StripeError
            raise StripeError("The Stripe emulator does not support the parameter "
                              "payments[%s] on this endpoint (Stripe does)." % key,
                              code="emulator_unsupported_parameter",
                              param="payments[%s]" % key, saved=False)
    if payments.has("debit_negative_balances"):
        ctx.emu.debit_negative_balances = payments.bool("debit_negative_balances")
    return _balance_settings(ctx.emu)
