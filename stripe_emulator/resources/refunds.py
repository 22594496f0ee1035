"""Refunds of charges, with optional transfer reversal and application fee refund.

Refunds draw on the platform's balance (debits of a charge not settled yet follow its
pending funds). When that balance cannot cover a refund, Stripe "debits the remaining
amount from your bank account or holds the refund as pending": the emulator's US platform
lets its bank account be debited (`debit_negative_balances`, on by default), so the
refund succeeds and the balance goes negative; with it off (the `platform` control) the
refund stays `pending` (`pending_reason: insufficient_funds`) with no balance
transaction until the balance covers it, then it is `succeeded` and booked. A refund of a `pm_card_pendingRefund` charge
waits (`processing`) and succeeds a moment later; one of a `pm_card_refundFail` charge
succeeds and fails a moment later, as the card network makes it.
"""
from .. import money
from ..errors import StripeError, invalid
from ..routes import route
from .cards import CARDS
from .charges import ensure_settled, in_settlement
from .common import apply_metadata, list_response, positive_amount, show
from .fees import refund_fee
from .transfers import reverse

REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _charge_for(ctx, p):
    emu = ctx.emu
    if p.has("charge"):
        return emu.store.get("charge", p.str("charge"), ctx.account, "charge", "charge")
    if not p.has("payment_intent"):
        raise StripeError("One of the following params should be provided for this "
                          "request: payment_intent or charge.", code="parameter_missing",
                          param="charge", saved=False)
    pi = emu.store.get("payment_intent", p.str("payment_intent"), ctx.account,
                       "payment_intent", "payment_intent")
    if pi["status"] != "succeeded":
        raise invalid("This PaymentIntent does not have a successful charge to refund.",
                      "payment_intent")
    return emu.store.find(pi["latest_charge"])


def _shares(emu, charge, amount, full):
    """How much of the transfer and of the application fee a refund of `amount` takes."""
    transfer = emu.store.find(charge["transfer"] or "")
    fee = emu.store.find(charge["application_fee"] or "")
    t_share = f_share = 0
    if transfer:
        left = transfer["amount"] - transfer["amount_reversed"]
        t_share = left if full else min(left, money.pro_rata(
            amount, charge["amount_captured"], transfer["amount"]))
    if fee:
        left = fee["amount"] - fee["amount_refunded"]
        f_share = left if full else min(left, money.pro_rata(
            amount, charge["amount_captured"], fee["amount"]))
    return transfer, t_share, fee, f_share


@route("POST", "/v1/refunds")
def create_refund(ctx):
    """POST /v1/refunds by charge or payment_intent."""
    p = ctx.params.check("charge", "payment_intent", "amount", "reason", "metadata",
                         "reverse_transfer", "refund_application_fee",
                         "instructions_email")
    emu = ctx.emu
    charge = _charge_for(ctx, p)
    if charge["status"] != "succeeded" or not charge["captured"]:
        raise invalid("Charge %s has not been captured or did not succeed." % charge["id"],
                      "charge")
    ensure_settled(emu, charge)  # what the refund reverses must exist first
    refundable = charge["amount"] - charge["amount_refunded"]
    if refundable <= 0:
        raise StripeError("Charge %s has already been refunded." % charge["id"],
                          code="charge_already_refunded")
    dispute = emu.store.find(charge["_dispute"] or "")
    if dispute and dispute["status"] not in ("won", "lost", "warning_closed"):
        raise StripeError("Charge %s has been charged back; cannot issue a refund."
                          % charge["id"], code="charge_disputed")
    amount = positive_amount(p, charge["currency"], required=False, default=refundable)
    if amount > refundable:
        raise invalid("Refund amount (%d) is greater than unrefunded amount on charge (%d)"
                      % (amount, refundable), "amount")
    reverse_transfer = p.bool("reverse_transfer", False)
    refund_app_fee = p.bool("refund_application_fee", False)
    destination = bool(charge["transfer"])
    if reverse_transfer and not destination:
        raise invalid("reverse_transfer is only valid for destination charges.",
                      "reverse_transfer")
    if refund_app_fee and destination and not reverse_transfer:
        raise invalid("refund_application_fee requires reverse_transfer for a destination "
                      "charge.", "refund_application_fee")
    full = amount == refundable
    transfer, t_share, fee, f_share = _shares(emu, charge, amount, full)
    refund = {
        "id": emu.new_id("re"), "object": "refund", "amount": amount,
        "balance_transaction": None, "charge": charge["id"], "created": emu.now(),
        "currency": charge["currency"], "customer": charge["customer"],
        "customer_account": None,
        "destination_details": {"card": {"reference": None, "reference_status": "pending",
                                         "reference_type": "acquirer_reference_number",
                                         "type": "refund"}, "type": "card"},
        "metadata": p.metadata() or {}, "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
        "reason": p.str("reason", choices=REASONS), "receipt_number": None,
        "source_transfer_reversal": None, "status": "succeeded", "transfer_reversal": None,
    }
    emu.store.add("refund", ctx.account, refund)
    charge["_refunds"].append(refund["id"])
    credit = f_share if refund_app_fee else 0
    # what the platform gets back from the vendor (the reversal) less the fee it returns
    incoming = (t_share - credit) if reverse_transfer else -credit
    info = CARDS.get(charge["_card"])
    if info and info.refund == "pending":
        _hold(emu, refund, "processing")
        emu.scheduler.add(("refund", refund["id"]), emu.settle_delay,
                          lambda: _release(emu, refund))
    elif not _fundable(emu, ctx.account, charge["_settle_cur"],
                       in_settlement(charge, amount) - incoming):
        _hold(emu, refund, "insufficient_funds")
    else:
        _book(emu, refund)
    if reverse_transfer and t_share:
        if credit:
            refund_fee(emu, fee, credit, credit_account=False)
        reversal = reverse(emu, transfer, t_share, source_refund=refund["id"],
                           fee_refund=credit)
        refund["transfer_reversal"] = reversal["id"]
    elif credit and fee:
        refund_fee(emu, fee, credit)
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    emu.emit("refund.created", refund, account=ctx.account)
    emu.emit("charge.refunded", charge, account=ctx.account, previous=previous)
    if info and info.refund == "fail" and refund["status"] == "succeeded":
        emu.scheduler.add(("refund", refund["id"]), emu.settle_delay,
                          lambda: fail_refund(emu, refund, "expired_or_canceled_card"))
    return show(ctx, refund)


def _fundable(emu, account, cur, amount):
    if emu.debit_negative_balances:
        return True
    available, pending = emu.balance(account).get(cur, (0, 0))
    return available + pending >= amount


def _book(emu, refund):
    """The refund's balance transaction (debits follow the funds of the charge it refunds)."""
    charge = emu.store.find(refund["charge"])
    cur = charge["_settle_cur"]
    refund["balance_transaction"] = emu.add_bt(
        refund["_account"], "refund", -in_settlement(charge, refund["amount"]), cur, refund["id"],
        "refund", "REFUND FOR CHARGE", (), emu.later(charge["_available_on"]),
        exchange_rate=_rate(charge))["id"]


def _rate(charge):
    if charge["_settle_cur"] == charge["currency"]:
        return None
    return money.display_rate(charge["currency"], charge["_settle_cur"])


def _hold(emu, refund, reason):
    refund.update(status="pending", pending_reason=reason)
    emu.pending_refunds.append(refund["id"])


def _release(emu, refund):
    """A pending refund goes through: booked, `succeeded`, announced."""
    if refund["status"] != "pending":
        return
    previous = {"status": "pending", "balance_transaction": None,
                "pending_reason": refund.get("pending_reason")}
    _book(emu, refund)
    refund["status"] = "succeeded"
    refund.pop("pending_reason", None)
    if refund["id"] in emu.pending_refunds:
        emu.pending_refunds.remove(refund["id"])
    emu.emit("refund.updated", refund, account=refund["_account"], previous=previous)
    emu.emit("charge.refund.updated", refund, account=refund["_account"], previous=previous)


def release_funded(emu):
    """Put through every refund held for lack of funds that the balance now covers."""
    for rid in list(emu.pending_refunds):
        refund = emu.store.find(rid)
        if refund is None or refund.get("pending_reason") != "insufficient_funds":
            continue
        charge = emu.store.find(refund["charge"])
        if _fundable(emu, refund["_account"], charge["_settle_cur"],
                     in_settlement(charge, refund["amount"])):
            _release(emu, refund)


def _get(ctx):
    return ctx.emu.store.get("refund", ctx.args["rid"], ctx.account, "refund", "refund")


@route("GET", "/v1/refunds/<rid>")
def retrieve_refund(ctx):
    """GET /v1/refunds/{id}."""
    return show(ctx, _get(ctx))


@route("POST", "/v1/refunds/<rid>")
def update_refund(ctx):
    """POST /v1/refunds/{id}: metadata."""
    p = ctx.params.check("metadata")
    refund = _get(ctx)
    before = apply_metadata(refund, p)
    if before is not None:
        ctx.emu.emit("refund.updated", refund, account=ctx.account,
                     previous={"metadata": before})
    return show(ctx, refund)


@route("GET", "/v1/refunds")
def list_refunds(ctx):
    """GET /v1/refunds with charge / payment_intent filters."""
    charge, pi = ctx.params.str("charge"), ctx.params.str("payment_intent")
    return list_response(ctx, "refund", "/v1/refunds",
                         lambda r: (charge is None or r["charge"] == charge)
                         and (pi is None or r["payment_intent"] == pi),
                         extra=("charge", "payment_intent"))


@route("GET", "/v1/charges/<cid>/refunds")
def list_charge_refunds(ctx):
    """GET /v1/charges/{id}/refunds."""
    charge = ctx.emu.store.get("charge", ctx.args["cid"], ctx.account, "charge")
    return list_response(ctx, "refund", "/v1/charges/%s/refunds" % charge["id"],
                         lambda r: r["charge"] == charge["id"])


FAILURE_REASONS = ("expired_or_canceled_card", "lost_or_stolen_card", "unknown")


def fail_refund(emu, refund, reason):
    """A refund the card network gave back (test card 4000000000005126): its amount returns
    to the platform (`refund_failure`, available at once), the charge counts it as unrefunded,
    and `refund.updated` and `refund.failed` are sent. A transfer reversal or application fee
    refund it made stays: giving the vendor its money back is the platform's business.
    A pending refund that fails never had a balance transaction: nothing comes back.
    """
    if refund["status"] == "failed":
        return refund
    if refund["status"] not in ("succeeded", "pending"):
        raise invalid("Only a succeeded or pending refund can fail.", "refund")
    account = refund["_account"]
    previous = {"status": refund["status"], "failure_reason": None,
                "failure_balance_transaction": None}
    bt = None
    charge = emu.store.find(refund["charge"])
    if refund["balance_transaction"]:
        bt = emu.add_bt(account, "refund_failure", in_settlement(charge, refund["amount"]),
                        charge["_settle_cur"], refund["id"], "refund_failure", "REFUND FAILURE",
                        exchange_rate=_rate(charge))
    if refund["id"] in emu.pending_refunds:
        emu.pending_refunds.remove(refund["id"])
    refund.pop("pending_reason", None)
    refund.update(status="failed", failure_reason=reason,
                  failure_balance_transaction=bt and bt["id"])
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    emu.emit("refund.updated", refund, account=account, previous=previous)
    emu.emit("refund.failed", refund, account=account)
    emu.emit("charge.refund.updated", refund, account=account, previous=previous)
    return refund
