"""Charges: creation on confirm, capture with its money movements, and the charge endpoints."""
from .. import money
from ..routes import route
from .common import list_response, show

CARDS = {  # test payment method -> (behaviour, brand, last4)
    "pm_card_visa": ("succeed", "visa", "4242"),
    "pm_card_visa_debit": ("succeed", "visa", "5556"),
    "pm_card_mastercard": ("succeed", "mastercard", "4444"),
    "pm_card_amex": ("succeed", "amex", "8431"),
    "pm_card_chargeDeclined": ("generic_decline", "visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "visa", "9995"),
    "pm_card_authenticationRequired": ("authenticate", "visa", "3155"),
    "pm_card_createDispute": ("dispute", "visa", "0259"),
    "pm_card_bypassPending": ("bypass", "visa", "0077"),
}
DECLINE_MESSAGES = {"generic_decline": "Your card was declined.",
                    "insufficient_funds": "Your card has insufficient funds."}


def payment_method(emu, pm_id):
    """A PaymentMethod object for a test payment method id."""
    _, brand, last4 = CARDS[pm_id]
    return {"id": pm_id, "object": "payment_method", "created": emu.now(),
            "livemode": False, "type": "card", "customer": None, "metadata": {},
            "billing_details": _billing(),
            "card": {"brand": brand, "exp_month": 12, "exp_year": 2034, "funding": "credit",
                     "last4": last4, "country": "US", "checks": None, "wallet": None,
                     "networks": {"available": [brand], "preferred": None},
                     "three_d_secure_usage": {"supported": True},
                     "generated_from": None, "fingerprint": "emu" + last4}}


def _billing():
    return {"address": {"city": None, "country": None, "line1": None, "line2": None,
                        "postal_code": None, "state": None},
            "email": None, "name": None, "phone": None}


def _outcome(ok, reason=None):
    if ok:
        return {"network_status": "approved_by_network", "reason": None,
                "risk_level": "normal", "risk_score": 32,
                "seller_message": "Payment complete.", "type": "authorized"}
    return {"network_status": "declined_by_network", "reason": reason,
            "risk_level": "normal", "risk_score": 40,
            "seller_message": "The bank did not return any further details.",
            "type": "issuer_declined"}


def new_charge(emu, owner, amount, cur, **fields):
    """Store a Charge with every field Stripe shows, overridden by `fields`."""
    charge = {
        "id": emu.new_id(fields.pop("prefix", "ch")), "object": "charge", "amount": amount,
        "amount_captured": 0, "amount_refunded": 0, "application": None,
        "application_fee": None, "application_fee_amount": None,
        "balance_transaction": None, "billing_details": _billing(),
        "calculated_statement_descriptor": "EMULATOR", "captured": False,
        "created": emu.now(), "currency": cur, "customer": None, "description": None,
        "destination": None, "dispute": None, "disputed": False, "failure_code": None,
        "failure_message": None, "fraud_details": {}, "livemode": False, "metadata": {},
        "on_behalf_of": None, "outcome": _outcome(True), "paid": True,
        "payment_intent": None, "payment_method": None, "payment_method_details": None,
        "receipt_email": None, "receipt_url": None, "refunded": False, "review": None,
        "source_transfer": None, "statement_descriptor": None,
        "statement_descriptor_suffix": None, "status": "succeeded", "transfer": None,
        "transfer_data": None, "transfer_group": None, "_refunds": [],
        "_available_on": None,
    }
    charge.update(fields)
    return emu.store.add("charge", owner, charge)


def card_charge(emu, pi, pm_id, ok=True, decline=None):
    """The Charge of a PaymentIntent's confirmation (succeeded or failed)."""
    pm = payment_method(emu, pm_id)
    fields = dict(
        payment_intent=pi["id"], payment_method=pm_id, description=pi["description"],
        metadata=dict(pi["metadata"]), on_behalf_of=pi["on_behalf_of"],
        transfer_data=pi["transfer_data"] and dict(pi["transfer_data"]),
        destination=(pi["transfer_data"] or {}).get("destination"),
        transfer_group=pi["transfer_group"], receipt_email=pi["receipt_email"],
        application_fee_amount=pi["application_fee_amount"],
        payment_method_details={"type": "card", "card": {
            "brand": pm["card"]["brand"], "last4": pm["card"]["last4"], "exp_month": 12,
            "exp_year": 2034, "funding": "credit", "country": "US", "network":
            pm["card"]["brand"], "checks": {"address_line1_check": None,
                                            "address_postal_code_check": None,
                                            "cvc_check": "pass"},
            "three_d_secure": None, "wallet": None, "installments": None,
            "fingerprint": pm["card"]["fingerprint"]}},
        receipt_url="https://pay.stripe.com/receipts/emulator/%s" % pi["id"])
    if not ok:
        fields.update(status="failed", paid=False, outcome=_outcome(False, decline),
                      failure_code="card_declined",
                      failure_message=DECLINE_MESSAGES.get(decline, "Declined"))
    return new_charge(emu, pi["_account"], pi["amount"], pi["currency"], **fields)


def capture(emu, charge, amount, bypass_pending=False):
    """Capture `amount`: processing fee, then the destination transfer and application fee."""
    from .transfers import make_transfer, make_application_fee
    platform = emu.platform_id
    owner = charge["_account"]
    cur = charge["currency"]
    now = emu.now()
    available_on = now if bypass_pending else now + emu.available_after
    charge.update(captured=True, amount_captured=amount, _available_on=available_on,
                  amount_refunded=charge["amount"] - amount)
    fee_amount = charge["application_fee_amount"] or 0
    details = [{"amount": money.processing_fee(amount, cur),
                "description": "Stripe processing fees", "type": "stripe_fee"}]
    direct = owner != platform
    if direct and fee_amount:
        details.append({"amount": fee_amount, "description": "Application fee",
                        "type": "application_fee"})
    bt = emu.add_bt(owner, "charge", amount, cur, charge["id"], "charge",
                    charge["description"], details, available_on)
    charge["balance_transaction"] = bt["id"]
    dest = (charge["transfer_data"] or {}).get("destination")
    if direct and fee_amount:
        make_application_fee(emu, owner, charge, charge, fee_amount)
    elif dest:
        sent = charge["transfer_data"].get("amount") or amount
        transfer = make_transfer(emu, dest, sent, cur, source_charge=charge,
                                 transfer_group=charge["transfer_group"],
                                 app_fee=fee_amount)
        charge["transfer"] = transfer["id"]
    emu.emit("charge.captured" if charge.get("_manual") else "charge.succeeded", charge,
             account=owner)


@route("GET", "/v1/charges/<cid>")
def retrieve_charge(ctx):
    """GET /v1/charges/{id}."""
    return show(ctx, ctx.emu.store.get("charge", ctx.args["cid"], ctx.account, "charge"))


@route("GET", "/v1/charges")
def list_charges(ctx):
    """GET /v1/charges with payment_intent / transfer_group / customer filters."""
    p = ctx.params
    pi, group = p.str("payment_intent"), p.str("transfer_group")
    return list_response(
        ctx, "charge", "/v1/charges",
        lambda c: (pi is None or c["payment_intent"] == pi)
        and (group is None or c["transfer_group"] == group),
        extra=("payment_intent", "transfer_group", "customer"))


@route("POST", "/v1/charges/<cid>")
def update_charge(ctx):
    """POST /v1/charges/{id}: metadata, description, transfer_group."""
    from .common import apply_metadata
    p = ctx.params.check("metadata", "description", "transfer_group", "receipt_email",
                         "fraud_details", "shipping")
    charge = ctx.emu.store.get("charge", ctx.args["cid"], ctx.account, "charge")
    previous = {}
    before_meta = apply_metadata(charge, p)
    if before_meta is not None:
        previous["metadata"] = before_meta
    for key in ("description", "transfer_group", "receipt_email"):
        if p.has(key) and p.str(key) != charge[key]:
            previous[key] = charge[key]
            charge[key] = p.str(key)
    if previous:
        ctx.emu.emit("charge.updated", charge, account=ctx.account, previous=previous)
    return show(ctx, charge)
