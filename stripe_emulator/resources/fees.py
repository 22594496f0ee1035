"""Application fees and their refunds."""
from ..errors import invalid
from ..routes import route
from .common import apply_metadata, list_response, positive_amount, show


def refund_fee(emu, fee, amount, credit_account=True, metadata=None):
    """Return part of an application fee: fr_ and application_fee_refund on the platform;
    the connected account gets the amount back unless a payment_refund carries it."""
    remaining = fee["amount"] - fee["amount_refunded"]
    if amount > remaining:
        raise invalid("Refund amount (%d) is greater than the unrefunded amount on the "
                      "application fee (%d)." % (amount, remaining), "amount")
    originating = emu.store.find(fee["originating_transaction"])
    available_on = emu.later(originating and originating["_available_on"])
    fr = {"id": emu.new_id("fr"), "object": "fee_refund", "amount": amount,
          "balance_transaction": None, "created": emu.now(), "currency": fee["currency"],
          "fee": fee["id"], "metadata": metadata or {}}
    emu.store.add("fee_refund", emu.platform_id, fr)
    fr["balance_transaction"] = emu.add_bt(
        emu.platform_id, "application_fee_refund", -amount, fee["currency"], fr["id"],
        "platform_earning_refund", "Application fee refund", (), available_on)["id"]
    if credit_account:
        emu.add_bt(fee["account"], "application_fee_refund", amount, fee["currency"],
                   fr["id"], "fee", "Application fee refund", (), available_on)
    previous = {"amount_refunded": fee["amount_refunded"], "refunded": fee["refunded"]}
    fee["amount_refunded"] += amount
    fee["refunded"] = fee["amount_refunded"] >= fee["amount"]
    fee["_refunds"].append(fr["id"])
    emu.emit("application_fee.refunded", fee, previous=previous)
    return fr


def _fee(ctx, key="fid"):
    return ctx.emu.store.get("application_fee", ctx.args[key], ctx.account,
                             "application fee", "id")


@route("GET", "/v1/application_fees/<fid>")
def retrieve_fee(ctx):
    """GET /v1/application_fees/{id}."""
    return show(ctx, _fee(ctx))


@route("GET", "/v1/application_fees")
def list_fees(ctx):
    """GET /v1/application_fees with a charge filter."""
    charge = ctx.params.str("charge")
    return list_response(ctx, "application_fee", "/v1/application_fees",
                         lambda f: charge is None or charge in (
                             f["charge"], f["originating_transaction"]),
                         extra=("charge",))


@route("POST", "/v1/application_fees/<fid>/refunds")
def create_fee_refund(ctx):
    """POST /v1/application_fees/{id}/refunds (all that is left by default)."""
    p = ctx.params.check("amount", "metadata")
    fee = _fee(ctx)
    remaining = fee["amount"] - fee["amount_refunded"]
    if remaining == 0:
        raise invalid("Application fee %s has already been refunded." % fee["id"],
                      code="charge_already_refunded")
    amount = positive_amount(p, fee["currency"], required=False, default=remaining)
    return show(ctx, refund_fee(ctx.emu, fee, amount, metadata=p.metadata() or {}))


@route("GET", "/v1/application_fees/<fid>/refunds")
def list_fee_refunds(ctx):
    """GET /v1/application_fees/{id}/refunds."""
    fee = _fee(ctx)
    return list_response(ctx, "fee_refund", "/v1/application_fees/%s/refunds" % fee["id"],
                         lambda r: r["fee"] == fee["id"])


def _fee_refund(ctx):
    fee = _fee(ctx, "fee")
    fr = ctx.emu.store.get("fee_refund", ctx.args["rid"], ctx.account, "fee refund")
    if fr["fee"] != fee["id"]:
        raise invalid("No such fee refund: %s" % fr["id"])
    return fr


@route("GET", "/v1/application_fees/<fee>/refunds/<rid>")
def retrieve_fee_refund(ctx):
    """GET /v1/application_fees/{fee}/refunds/{id}."""
    return show(ctx, _fee_refund(ctx))


@route("POST", "/v1/application_fees/<fee>/refunds/<rid>")
def update_fee_refund(ctx):
    """POST /v1/application_fees/{fee}/refunds/{id}: metadata."""
    p = ctx.params.check("metadata")
    fr = _fee_refund(ctx)
    apply_metadata(fr, p)
    return show(ctx, fr)
