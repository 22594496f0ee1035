"""Charges: created by confirmations, captured, settled later, and the charge endpoints.

Asynchronous capture (the default since API 2024-04-10, `capture_method=automatic_async`):
the charge is captured at confirmation but its balance transaction, its destination
transfer and its application fee only exist once it settles, a moment later; `charge.updated`
announces them. Until then the API shows them as null, in responses and in the
`charge.succeeded` and `payment_intent.succeeded` events alike. `capture_method=automatic`
(or the `sync` capture control) settles at once, as before 2024.
"""
from .. import money
from ..routes import route
from ..state import clone
from .cards import CARDS, billing_details, decline_message
from .common import list_response, show


def _outcome(ok, reason=None):
    if ok:
        return {"advice_code": None, "network_advice_code": None,
                "network_decline_code": None, "network_status": "approved_by_network",
                "reason": None, "risk_level": "normal", "risk_score": 32,
                "seller_message": "Payment complete.", "type": "authorized"}
    blocked = reason == "fraudulent"
    return {"advice_code": "do_not_try_again" if blocked else None,
            "network_advice_code": None, "network_decline_code": None,
            "network_status": "not_sent_to_network" if blocked else "declined_by_network",
            "reason": "highest_risk_level" if blocked else reason,
            "risk_level": "highest" if blocked else "normal",
            "risk_score": 95 if blocked else 40,
            "seller_message": "Stripe blocked this payment as too risky." if blocked
            else "The bank did not return any further details with this decline.",
            "type": "blocked" if blocked else "issuer_declined"}


def new_charge(emu, owner, amount, cur, **fields):
    """Store a Charge with every field Stripe shows, overridden by `fields`."""
    charge = {
        "id": emu.new_id(fields.pop("prefix", "ch")), "object": "charge", "amount": amount,
        "amount_captured": 0, "amount_refunded": 0, "application": None,
        "application_fee": None, "application_fee_amount": None,
        "balance_transaction": None, "billing_details": billing_details(),
        "calculated_statement_descriptor": "EMULATOR", "captured": False,
        "created": emu.now(), "currency": cur, "customer": None, "description": None,
        "disputed": False, "failure_balance_transaction": None, "failure_code": None,
        "failure_message": None, "fraud_details": {}, "livemode": False, "metadata": {},
        "on_behalf_of": None, "outcome": _outcome(True), "paid": True,
        "payment_intent": None, "payment_method": None, "payment_method_details": None,
        "receipt_email": None, "receipt_number": None, "receipt_url": None,
        "refunded": False, "review": None, "shipping": None, "source": None,
        "source_transfer": None, "statement_descriptor": None,
        "statement_descriptor_suffix": None, "status": "succeeded", "transfer": None,
        "transfer_data": None, "transfer_group": None, "_refunds": [],
        "_available_on": None, "_dispute": None, "_card": None, "_settle_cur": None,
    }
    charge.update(fields)
    return emu.store.add("charge", owner, charge)


def card_charge(emu, pi, pm_id, ok=True, decline=None, code="card_declined"):
    """The Charge of a PaymentIntent's confirmation (succeeded or failed) with the stored
    PaymentMethod `pm_id`: its card's details, billing details and behaviour."""
    pm = emu.store.find(pm_id)
    info = CARDS[pm["_card"]]
    details = pm["card"]
    fields = dict(
        payment_intent=pi["id"], payment_method=pm_id, description=pi["description"],
        billing_details=clone(pm["billing_details"]),
        metadata=dict(pi["metadata"]), on_behalf_of=pi["on_behalf_of"],
        customer=pi.get("customer"),
        transfer_data=pi["transfer_data"] and dict(pi["transfer_data"]),
        transfer_group=pi["transfer_group"], receipt_email=pi["receipt_email"],
        application_fee_amount=pi["application_fee_amount"], _card=pm["_card"],
        payment_method_details={"type": "card", "card": {
            "amount_authorized": pi["amount"] if ok else None,
            "authorization_code": "123456" if ok else None,
            "brand": info.brand, "checks": details["checks"], "country": info.country,
            "exp_month": details["exp_month"], "exp_year": details["exp_year"],
            "extended_authorization": {"status": "disabled"},
            "fingerprint": details["fingerprint"], "funding": info.funding,
            "incremental_authorization": {"status": "unavailable"},
            "installments": None, "last4": details["last4"], "mandate": None,
            "multicapture": {"status": "unavailable"}, "network": info.brand,
            "network_token": {"used": False}, "network_transaction_id": None,
            "overcapture": {"maximum_amount_capturable": pi["amount"],
                            "status": "unavailable"},
            "regulated_status": "unregulated", "three_d_secure": None, "wallet": None}},
        receipt_url="https://pay.stripe.com/receipts/emulator/%s" % pi["id"])
    if not ok:
        fields.update(status="failed", paid=False, outcome=_outcome(False, decline),
                      failure_code=code, failure_message=decline_message(info, decline))
    return new_charge(emu, pi["_account"], pi["amount"], pi["currency"], **fields)


def capture(emu, charge, amount, synchronous=False):
    """Capture `amount`: the charge is captured now; its money moves when it settles.

    The application fee is capped at the captured amount. With asynchronous capture the
    settlement (balance transaction, transfer, application fee, `charge.updated`) is
    scheduled a moment later; synchronously it happens before the capture is announced.
    """
    info = CARDS.get(charge["_card"])
    now = emu.now()
    bypass = bool(info and info.bypass)
    owner = charge["_account"]
    charge.update(captured=True, amount_captured=amount,
                  _available_on=now if bypass else now + emu.available_after,
                  _settle_cur=emu.settlement_currency(charge["currency"])
                  if owner == emu.platform_id else charge["currency"],
                  amount_refunded=charge["amount"] - amount)
    if charge["application_fee_amount"] is not None:
        charge["application_fee_amount"] = min(charge["application_fee_amount"], amount)
    if synchronous or emu.capture_mode == "sync":
        settle(emu, charge, announce=False)
    else:
        emu.scheduler.add(("settle", charge["id"]), emu.settle_delay,
                          lambda: settle(emu, charge))
    emu.emit("charge.captured" if charge.get("_manual") else "charge.succeeded", charge,
             account=charge["_account"])


def in_settlement(charge, amount):
    """An amount of the charge's currency in the currency its balance transaction is in
    (converted when the platform does not settle in the charge's currency)."""
    if amount is None:
        return None
    return money.convert(amount, charge["currency"], charge.get("_settle_cur") or charge["currency"])


def ensure_settled(emu, charge):
    """Settle a captured charge now if it is still waiting (a request needs its money)."""
    emu.scheduler.run(("settle", charge["id"]))


def settle(emu, charge, announce=True):
    """The captured charge's balance transaction, destination transfer and application fee."""
    from .disputes import open_dispute
    from .transfers import make_application_fee, make_transfer
    if charge["balance_transaction"] is not None or not charge["captured"]:
        return
    owner, presented, cur = charge["_account"], charge["currency"], charge["_settle_cur"]
    amount = in_settlement(charge, charge["amount_captured"])
    fee_amount = in_settlement(charge, charge["application_fee_amount"] or 0)
    details = [{"amount": money.processing_fee(amount, cur),
                "description": "Stripe processing fees", "type": "stripe_fee"}]
    direct = owner != emu.platform_id
    if direct and fee_amount:
        details.append({"amount": fee_amount, "description": "Application fee",
                        "type": "application_fee"})
    bt = emu.add_bt(owner, "charge", amount, cur, charge["id"], "charge",
                    charge["description"], details, charge["_available_on"],
                    exchange_rate=money.display_rate(presented, cur) if cur != presented else None)
    previous = {"balance_transaction": None}
    charge["balance_transaction"] = bt["id"]
    dest = (charge["transfer_data"] or {}).get("destination")
    if direct and fee_amount:
        make_application_fee(emu, owner, charge, charge, fee_amount)
        previous["application_fee"] = None
    elif dest:
        sent = in_settlement(charge, charge["transfer_data"].get("amount")) or amount
        transfer = make_transfer(emu, dest, sent, cur, source_charge=charge,
                                 transfer_group=charge["transfer_group"],
                                 app_fee=fee_amount)
        charge["transfer"] = transfer["id"]
        previous["transfer"] = None
        if fee_amount:
            previous["application_fee"] = None
    if announce:
        emu.emit("charge.updated", charge, account=owner, previous=previous)
    info = CARDS.get(charge["_card"])
    if info and info.dispute:  # the cardholder disputes it a moment later
        emu.scheduler.add(("dispute", charge["id"]), 0,
                          lambda: open_dispute(emu, charge, info.dispute))


@route("GET", "/v1/charges/<cid>")
def retrieve_charge(ctx):
    """GET /v1/charges/{id}."""
    return show(ctx, ctx.emu.store.get("charge", ctx.args["cid"], ctx.account, "charge"))


@route("GET", "/v1/charges")
def list_charges(ctx):
    """GET /v1/charges with payment_intent / transfer_group / customer filters."""
    p = ctx.params
    pi, group = p.str("payment_intent"), p.str("transfer_group")
    customer = p.str("customer")
    return list_response(
        ctx, "charge", "/v1/charges",
        lambda c: (pi is None or c["payment_intent"] == pi)
        and (group is None or c["transfer_group"] == group)
        and (customer is None or c["customer"] == customer),
        extra=("payment_intent", "transfer_group", "customer"))


@route("POST", "/v1/charges/<cid>")
def update_charge(ctx):
    """POST /v1/charges/{id}: metadata, description, transfer_group, receipt_email."""
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
