"""Payouts from a balance to the account's bank: pending -> in_transit -> paid or failed."""
from ..errors import StripeError, invalid
from ..routes import route
from .accounts import PAYOUT_FAILURES
from .common import apply_metadata, currency, list_response, positive_amount, show
from .transfers import balance_insufficient

FAILURE_MESSAGES = {
    "no_account": "The bank account details on file are probably incorrect. No bank "
                  "account could be located with those details.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "account_closed": "The bank account has been closed.",
    "debit_not_authorized": "Debit transactions are not approved on the bank account.",
    "invalid_currency": "The bank was unable to process this payout because of its "
                        "currency.",
}


def _bank(emu, account, cur):
    acct = emu.store.find(account)
    banks = [emu.store.find(b) for b in (acct or {}).get("_external_accounts", [])]
    banks = [b for b in banks if b["default_for_currency"]] or banks
    return banks[-1] if banks else None


@route("POST", "/v1/payouts")
def create_payout(ctx):
    """POST /v1/payouts: at most the available balance."""
    p = ctx.params.check("amount", "currency", "description", "metadata", "method",
                         "destination", "statement_descriptor", "source_type")
    emu = ctx.emu
    cur = currency(p)
    amount = positive_amount(p, cur)
    method = p.str("method", "standard", choices=("standard", "instant"))
    if not ctx.is_platform:
        acct = emu.store.find(ctx.account)
        if not acct["payouts_enabled"]:
            raise StripeError("Payouts are not enabled for this account; complete "
                              "onboarding first.", code="payouts_not_allowed")
    bank = _bank(emu, ctx.account, cur)
    if bank is None and not ctx.is_platform:
        raise invalid("This account has no external account for %s." % cur,
                      "destination", code="no_external_account")
    if method == "instant":  # instant payouts go to eligible debit cards, not bank accounts
        raise StripeError("This bank account is not eligible for Instant Payouts. Try a debit "
                          "card from a supported bank.", code="instant_payouts_unsupported",
                          param="method")
    if emu.balance(ctx.account).get(cur, (0, 0))[0] < amount:
        raise balance_insufficient(
            "You have insufficient funds in your Stripe account for this transfer. Your "
            "card balance is too low.")
    now = emu.now()
    payout = {
        "id": emu.new_id("po"), "object": "payout", "amount": amount,
        "arrival_date": now + emu.payout_arrival_seconds, "automatic": False,
        "balance_transaction": None, "created": now, "currency": cur,
        "description": p.str("description"), "destination": bank and bank["id"],
        "failure_balance_transaction": None, "failure_code": None,
        "failure_message": None, "livemode": False, "metadata": p.metadata() or {},
        "method": method, "original_payout": None, "reversed_by": None,
        "reconciliation_status": "not_applicable",
        "source_type": "card", "statement_descriptor": p.str("statement_descriptor"),
        "status": "pending", "type": "bank_account",
        "_failure": PAYOUT_FAILURES.get(bank and bank["_number"]),
    }
    emu.store.add("payout", ctx.account, payout)
    payout["balance_transaction"] = emu.add_bt(
        ctx.account, "payout", -amount, cur, payout["id"], "payout",
        "STRIPE PAYOUT", payout=payout["id"])["id"]
    emu.emit("payout.created", payout, account=ctx.account)
    return show(ctx, payout)


def _return_funds(emu, payout, kind, status, event):
    """Put a failed or canceled payout's money back (payout_failure / payout_cancel)."""
    previous = {"status": payout["status"]}
    bt = emu.add_bt(payout["_account"], kind, payout["amount"], payout["currency"],
                    payout["id"], "payout_reversal",
                    {"failed": "Payout failure", "canceled": "Payout cancellation"}[status],
                    payout=payout["id"])
    payout.update(status=status, failure_balance_transaction=bt["id"])
    emu.emit("payout.updated", payout, account=payout["_account"], previous=previous)
    emu.emit(event, payout, account=payout["_account"])


def advance_payouts(emu):
    """Move payouts along after the clock moved: in_transit, then paid or failed."""
    now = emu.now()
    for (kind, _), items in list(emu.store.lists.items()):
        if kind != "payout":
            continue
        for payout in items:
            account = payout["_account"]
            if payout["status"] == "pending" and \
                    now >= payout["created"] + emu.payout_transit_seconds:
                payout["status"] = "in_transit"
                emu.emit("payout.updated", payout, account=account,
                         previous={"status": "pending"})
            if payout["status"] == "in_transit" and now >= payout["arrival_date"]:
                code = payout["_failure"]
                if code:
                    payout.update(failure_code=code, failure_message=FAILURE_MESSAGES[code])
                    _return_funds(emu, payout, "payout_failure", "failed", "payout.failed")
                else:
                    payout["status"] = "paid"
                    emu.emit("payout.updated", payout, account=account,
                             previous={"status": "in_transit"})
                    emu.emit("payout.paid", payout, account=account)


def _get(ctx):
    return ctx.emu.store.get("payout", ctx.args["pid"], ctx.account, "payout", "payout")


@route("POST", "/v1/payouts/<pid>/cancel")
def cancel_payout(ctx):
    """POST /v1/payouts/{id}/cancel while pending."""
    ctx.params.check()
    payout = _get(ctx)
    if payout["status"] != "pending":
        raise invalid("Payouts can only be canceled while they are pending; this one is "
                      "%s." % payout["status"], code="payout_not_cancelable")
    _return_funds(ctx.emu, payout, "payout_cancel", "canceled", "payout.canceled")
    return show(ctx, payout)


@route("GET", "/v1/payouts/<pid>")
def retrieve_payout(ctx):
    """GET /v1/payouts/{id}."""
    return show(ctx, _get(ctx))


@route("POST", "/v1/payouts/<pid>")
def update_payout(ctx):
    """POST /v1/payouts/{id}: metadata."""
    p = ctx.params.check("metadata")
    payout = _get(ctx)
    before = apply_metadata(payout, p)
    if before is not None:
        ctx.emu.emit("payout.updated", payout, account=ctx.account,
                     previous={"metadata": before})
    return show(ctx, payout)


@route("GET", "/v1/payouts")
def list_payouts(ctx):
    """GET /v1/payouts with status / arrival_date filters."""
    from ..store import created_filter
    status = ctx.params.str("status")
    arrival = created_filter(ctx.params, "arrival_date")
    return list_response(ctx, "payout", "/v1/payouts",
                         lambda po: (status is None or po["status"] == status)
                         and arrival(po["arrival_date"]),
                         extra=("status", "arrival_date", "destination"))
