"""Invoices of subscriptions, their line items and InvoicePayments, and how Stripe collects
them: through a PaymentIntent made on the invoice's account (the platform, for a
subscription with `transfer_data`: a destination charge, with the application fee computed
from the subscription's `application_fee_percent`).

As at the current API: an invoice names its subscription in
`parent.subscription_details.subscription` (no `invoice.subscription`), its payments are
InvoicePayment objects (`invoice.payments`, included only when expanded, and
`GET /v1/invoice_payments?invoice=`; no `invoice.payment_intent` or `invoice.charge`), and the
PaymentIntent's client secret is `confirmation_secret` (included only when expanded).

An invoice is made with its subscription's `transfer_data` and `application_fee_percent` as
they stand then: changing the subscription later leaves it as it is, but a draft's own
`transfer_data` and `application_fee_amount` can be set (the current API shows neither on the
object). A subscription's first invoice (`subscription_create`) is finalized at once; a renewal's
(`subscription_cycle`) is a draft for an hour (`automatically_finalizes_at`), then finalized
and paid off-session. Finalizing makes the PaymentIntent (`description` "Subscription
creation" or "Subscription update", `setup_future_usage=off_session`) and an open
InvoicePayment. A payment attempt is a confirmation of that PaymentIntent with the
subscription's (else the customer's) default PaymentMethod, so it moves money exactly as
any PaymentIntent does (asynchronous capture, destination transfer, application fee). The
PaymentIntent succeeding, by whatever path (automatic collection, `POST /pay`, the client
confirming it, the customer completing 3-D Secure), pays the invoice: `invoice_payment.paid`,
`invoice.paid`, `invoice.payment_succeeded`. A failed attempt sends `invoice.payment_failed`;
one that needs the customer `invoice.payment_action_required`.

Retries (Stripe's Smart Retries, modelled as a fixed schedule): a renewal whose automatic
attempt fails is tried again `retry_days` after the previous automatic attempt (3, 5 and 7
days by default: days 3, 8 and 15); when the last retry fails the subscription is canceled
(or left `unpaid` or `past_due`, the `billing` control says which, as Stripe's Dashboard
setting does). Manual attempts after the first do not move the schedule nor count in
`attempt_count`; a PaymentIntent waiting for the customer (3-D Secure) is not retried.
"""
from decimal import ROUND_HALF_UP, Decimal

from .. import money
from ..errors import StripeError, invalid, not_found
from ..forms import Params
from ..render import sublist
from ..routes import route
from ..store import paginate
from .cards import CARDS, decline_message
from .charges import ensure_settled
from .common import apply_metadata, list_response, show
from .payment_intents import CONFIRMABLE, attempt, needs_authentication, open_intent
from .payment_methods import resolve
from .accounts import require_transfers
from .products import supported, unsupported

DAY = 86400
DRAFT_SECONDS = 3600  # a renewal invoice is a draft this long before it is finalized
RETRY_DAYS = (3, 5, 7)
AFTER_RETRIES = ("cancel", "unpaid", "past_due")
NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. Please "
    "consider adding a default payment method. For more information, visit "
    "https://docs.stripe.com/billing/subscriptions/payment-methods-setting#payment-method-"
    "priority.")
REQUIRES_ACTION = (
    "This payment requires additional user action before it can be completed successfully. "
    "Payment can be completed using the PaymentIntent associated with the invoice. For more "
    "details see: https://docs.stripe.com/billing/subscriptions/overview#requires-action")
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$",
           "nzd": "NZ$", "hkd": "HK$", "sgd": "SGD ", "chf": "CHF ", "inr": "₹"}


def billing_settings(emu):
    """The retry schedule and what happens after the last retry (the `billing` control)."""
    if not hasattr(emu, "billing") or emu.billing is None:
        emu.billing = {"retry_days": list(RETRY_DAYS), "after_retries": "cancel"}
    return emu.billing


def percent_of(amount, percent):
    """`percent` (a number with at most two decimals) of `amount`, rounded half up."""
    value = Decimal(amount) * Decimal(str(percent)) / Decimal(100)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _money(amount, cur):
    exp = money.exponent(cur)
    text = "{:,.{}f}".format(Decimal(amount).scaleb(-exp), exp)
    return SYMBOLS.get(cur, cur.upper() + " ") + text


def describe(price, product, quantity):
    """Stripe's line description: `1 × Gold (at $10.00 / month)`."""
    rec = price["recurring"]
    count, interval = rec["interval_count"], rec["interval"]
    every = interval if count == 1 else "every %d %ss" % (count, interval)
    return "%d × %s (at %s / %s)" % (quantity, product["name"],
                                     _money(price["unit_amount"], price["currency"]), every)


# making invoices -----------------------------------------------------------------------

def default_payment_method(emu, sub):
    """The PaymentMethod an invoice of `sub` is paid with: the subscription's default, else
    the customer's `invoice_settings.default_payment_method` (None if neither); one no
    longer attached to the customer (detached since) does not count."""
    customer = emu.store.find(sub["customer"])
    for pm_id in (sub.get("default_payment_method"),
                  customer and (customer.get("invoice_settings") or {}).get(
                      "default_payment_method")):
        pm = emu.store.find(pm_id) if pm_id else None
        if pm is not None and pm["customer"] == sub["customer"]:
            return pm
    return None


def _line(emu, inv, sub, item):
    price = emu.store.find(item["price"])
    product = emu.store.find(price["product"])
    amount = price["unit_amount"] * item["quantity"]
    line = {
        "id": emu.new_id("il"), "object": "line_item", "amount": amount,
        "currency": price["currency"],
        "description": describe(price, product, item["quantity"]),
        "discount_amounts": [], "discountable": True, "discounts": [], "invoice": inv["id"],
        "livemode": False, "metadata": {},
        "parent": {"invoice_item_details": None, "type": "subscription_item_details",
                   "subscription_item_details": {
                       "invoice_item": None, "proration": False,
                       "proration_details": {"credited_items": None},
                       "subscription": sub["id"], "subscription_item": item["id"]}},
        "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
        "pretax_credit_amounts": [],
        "pricing": {"price_details": {"price": price["id"], "product": product["id"]},
                    "type": "price_details", "unit_amount_decimal": str(price["unit_amount"])},
        "quantity": item["quantity"], "subscription": sub["id"], "subtotal": amount,
        "taxes": [],
    }
    return emu.store.add("line_item", inv["_account"], line)


def create_invoice(emu, sub, reason, period_start, period_end, announce=True):
    """A draft invoice of the subscription's items for their current period
    (`invoice.created`, unless the caller sends it after its own event)."""
    account = sub["_account"]
    customer = emu.store.find(sub["customer"])
    now = emu.now()
    acct = emu.store.find(account)
    inv = {
        "id": emu.new_id("in"), "object": "invoice",
        "account_country": acct["country"] if acct and acct.get("country") else "US",
        "account_name": None, "account_tax_ids": None, "amount_due": 0,
        "amount_overpaid": 0, "amount_paid": 0, "amount_remaining": 0, "amount_shipping": 0,
        "application": None, "attempt_count": 0, "attempted": False, "auto_advance": True,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                          "provider": None, "status": None},
        "automatically_finalizes_at": None, "billing_reason": reason,
        "collection_method": "charge_automatically", "created": now,
        "currency": sub["currency"], "custom_fields": None, "customer": sub["customer"],
        "customer_account": None, "customer_address": None,
        "customer_email": customer["email"], "customer_name": customer["name"],
        "customer_phone": customer["phone"], "customer_shipping": None,
        "customer_tax_exempt": "none", "customer_tax_ids": [],
        "default_payment_method": None, "default_source": None, "default_tax_rates": [],
        "description": None, "discounts": [], "due_date": None, "effective_at": None,
        "ending_balance": None, "footer": None, "from_invoice": None,
        "hosted_invoice_url": None, "invoice_pdf": None, "issuer": {"type": "self"},
        "last_finalization_error": None, "latest_revision": None, "livemode": False,
        "metadata": {}, "next_payment_attempt": None, "number": None, "on_behalf_of": None,
        "parent": {"quote_details": None, "type": "subscription_details",
                   "subscription_details": {"metadata": dict(sub["metadata"]) or None,
                                            "subscription": sub["id"]}},
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": period_end, "period_start": period_start,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "receipt_number": None, "rendering": None, "shipping_cost": None,
        "shipping_details": None, "starting_balance": 0, "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subtotal": 0, "subtotal_excluding_tax": 0, "test_clock": None, "total": 0,
        "total_discount_amounts": [], "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [], "total_taxes": [], "webhooks_delivered_at": now,
        "_subscription": sub["id"], "_lines": [], "_payments": [], "_pi": None, "_retries": 0,
        # The application fee and transfer_data set on the invoice (the current API shows
        # neither on the object, though invoices take both while drafts).
        "_fee": None, "_transfer_data": None, "_fee_percent": sub.get("application_fee_percent"),
    }
    emu.store.add("invoice", account, inv)
    for item_id in sub["_items"]:
        inv["_lines"].append(_line(emu, inv, sub, emu.store.find(item_id))["id"])
    total = sum(emu.store.find(li)["amount"] for li in inv["_lines"])
    inv.update(amount_due=total, amount_remaining=total, subtotal=total,
               subtotal_excluding_tax=total, total=total, total_excluding_tax=total)
    if sub.get("transfer_data"):  # the subscription's terms now (a later change leaves them)
        td = sub["transfer_data"]
        inv["_transfer_data"] = {"amount": None if td.get("amount_percent") is None
                                else percent_of(total, td["amount_percent"]),
                                "destination": td["destination"]}
    if reason != "subscription_create":
        inv["automatically_finalizes_at"] = inv["next_payment_attempt"] = now + DRAFT_SECONDS
    if announce:
        emu.emit("invoice.created", inv, account=account)
    return inv


def _terms(emu, sub, inv):
    """(amount, currency, application fee, transfer_data) of the invoice's PaymentIntent: the
    invoice's own `transfer_data` (the subscription's when the invoice was made, or as set on
    the draft since) and `application_fee_amount`, else the subscription's percent."""
    total, td = inv["amount_due"], inv["_transfer_data"]
    if td is None and inv["_account"] == emu.platform_id:  # the platform's own charge: no fee
        return total, inv["currency"], None, None
    fee = inv["_fee"]  # a direct charge's (on a connected account), or a destination charge's
    if fee is None and inv["_fee_percent"] is not None:  # the subscription's when it was made
        fee = percent_of(total, inv["_fee_percent"])
    transfer_data = None
    if td is not None:
        transfer_data = {"destination": td["destination"]}
        if td.get("amount") is not None:
            transfer_data["amount"] = td["amount"]
    return total, inv["currency"], None if fee is None else min(fee, total), transfer_data


def finalize(emu, inv):
    """The draft becomes `open` (number, `invoice.finalized`), with the PaymentIntent that
    will pay it and an open InvoicePayment; an invoice of nothing is paid at once."""
    sub = emu.store.find(inv["_subscription"])
    account = inv["_account"]
    customer = emu.store.find(inv["customer"])
    now = emu.now()
    number = "%s-%04d" % (customer["invoice_prefix"], customer["next_invoice_sequence"])
    customer["next_invoice_sequence"] += 1
    inv.update(status="open", number=number, effective_at=now, ending_balance=0,
               automatically_finalizes_at=None, next_payment_attempt=None,
               customer_email=customer["email"], customer_name=customer["name"],
               customer_phone=customer["phone"])
    inv["status_transitions"]["finalized_at"] = now
    if inv["amount_due"] == 0:
        emu.emit("invoice.finalized", inv, account=account)
        _mark_paid(emu, inv, None)
        return inv
    pm = default_payment_method(emu, sub)
    params = {"customer": inv["customer"], "setup_future_usage": "off_session",
              "description": "Subscription creation"
              if inv["billing_reason"] == "subscription_create" else "Subscription update"}
    pi = open_intent(emu, account, Params(params), _terms(emu, sub, inv),
                     pm and pm["id"], automatic=False)
    pi["_invoice"] = inv["id"]
    inv["_pi"] = pi["id"]
    payment = {
        "id": emu.new_id("inpay"), "object": "invoice_payment", "amount_paid": None,
        "amount_requested": inv["amount_due"], "created": now, "currency": inv["currency"],
        "invoice": inv["id"], "is_default": True, "livemode": False,
        "payment": {"payment_intent": pi["id"], "type": "payment_intent"},
        "status": "open", "status_transitions": {"canceled_at": None, "paid_at": None},
    }
    emu.store.add("invoice_payment", account, payment)
    inv["_payments"].append(payment["id"])
    emu.emit("invoice.finalized", inv, account=account)
    return inv


def predicted_failure(emu, pm, customer_id, off_session):
    """The 402 a first payment with `pm` would meet (for `error_if_incomplete`, which makes
    nothing when the first invoice cannot be paid), or None if it would succeed."""
    info = CARDS[pm["_card"]]
    if info.behaviour == "decline":
        return StripeError(decline_message(info), type="card_error", code=info.code,
                           decline_code=info.decline_code, status=402,
                           headers={"Stripe-Should-Retry": "false"})
    probe = {"customer": customer_id, "payment_method": pm["id"]}
    if info.behaviour == "authenticate" and needs_authentication(emu, probe, info, off_session):
        return StripeError(REQUIRES_ACTION, type="card_error",
                           code="invoice_payment_intent_requires_action", status=402)
    return None


def collect(ctx, inv, pm=None, off_session=True, automatic=False):
    """One payment attempt of an open invoice: its PaymentIntent confirmed with `pm` (a
    stored PaymentMethod) or the default one. A decline raises the 402 (the invoice's and
    the subscription's state already changed by then); needing 3-D Secure leaves the
    PaymentIntent in `requires_action`. `automatic`: Stripe's own collection (it counts in
    `attempt_count` and moves the retry schedule)."""
    emu = ctx.emu
    sub = emu.store.find(inv["_subscription"])
    pi = emu.store.find(inv["_pi"])
    if pi["status"] not in CONFIRMABLE:
        raise StripeError("This invoice's payment cannot be attempted: its PaymentIntent "
                          "has a status of %s." % pi["status"],
                          code="invoice_not_editable")
    if pm is None:
        pm = default_payment_method(emu, sub)
    if automatic and inv["attempt_count"] > 0:
        inv["attempt_count"] += 1  # an automatic retry
    inv["_automatic"] = automatic
    try:
        if pm is None:
            pi.update(payment_method=None, status="requires_payment_method")
            _failed(emu, inv)
            raise StripeError(NO_PAYMENT_METHOD, code="resource_missing")
        attempt(ctx, pi, pm, Params({"off_session": "true" if off_session else "false"}),
                billing=True)
    finally:
        inv.pop("_automatic", None)
    if pi["status"] == "requires_action" and not automatic and off_session:
        raise StripeError(REQUIRES_ACTION, type="card_error",
                          code="invoice_payment_intent_requires_action", status=402,
                          extra={"payment_intent": emu.render(pi)})


# what the invoice's PaymentIntent does (called from payment_intents) --------------------

def _of(emu, pi):
    inv = emu.store.find(pi.get("_invoice") or "")
    return inv if inv is not None and inv["status"] == "open" else None


def _attempted(inv):
    inv["attempted"] = True
    inv["attempt_count"] = max(inv["attempt_count"], 1)


def _mark_paid(emu, inv, pi):
    account = inv["_account"]
    now = emu.now()
    inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0,
               auto_advance=False, next_payment_attempt=None)
    if pi is not None:
        _attempted(inv)
    inv["status_transitions"]["paid_at"] = now
    for pid in inv["_payments"]:
        payment = emu.store.find(pid)
        if payment["status"] == "open":
            payment.update(status="paid", amount_paid=payment["amount_requested"])
            payment["status_transitions"]["paid_at"] = now
            emu.emit("invoice_payment.paid", payment, account=account)
    emu.emit("invoice.paid", inv, account=account)
    emu.emit("invoice.payment_succeeded", inv, account=account)
    from .subscriptions import invoice_paid
    invoice_paid(emu, inv, pi)
    if pi is not None and getattr(emu, "billing_stepping", False):
        # the clock is passing this moment: the charge settles before it moves on
        ensure_settled(emu, emu.store.find(pi["latest_charge"]))


def payment_succeeded(emu, pi):
    """The invoice's PaymentIntent succeeded: the invoice is paid."""
    inv = _of(emu, pi)
    if inv is not None:
        _mark_paid(emu, inv, pi)


def _schedule_retry(emu, inv):
    """The next automatic attempt of an open renewal, `retry_days` from now (none for a first
    invoice, nor once the schedule is spent)."""
    days = billing_settings(emu)["retry_days"]
    if inv["billing_reason"] != "subscription_create" and inv["_retries"] < len(days):
        inv["next_payment_attempt"] = emu.now() + int(days[inv["_retries"]]) * DAY
        inv["_retries"] += 1


def _failed(emu, inv):
    """A failed attempt: `invoice.payment_failed`, the next retry scheduled (automatic
    attempts of a renewal), the subscription past due."""
    _attempted(inv)
    exhausted = False
    if inv.get("_automatic"):
        days = billing_settings(emu)["retry_days"]
        if inv["billing_reason"] == "subscription_create":
            inv["next_payment_attempt"] = None
        elif inv["_retries"] < len(days):
            inv["next_payment_attempt"] = emu.now() + int(days[inv["_retries"]]) * DAY
            inv["_retries"] += 1
        else:
            inv["next_payment_attempt"] = None
            exhausted = True
    emu.emit("invoice.payment_failed", inv, account=inv["_account"])
    from .subscriptions import invoice_unpaid
    invoice_unpaid(emu, inv, exhausted)


def payment_failed(emu, pi):
    """The invoice's PaymentIntent failed an attempt (declined, or 3-D Secure failed)."""
    inv = _of(emu, pi)
    if inv is not None:
        _failed(emu, inv)


def payment_action_required(emu, pi):
    """The invoice's PaymentIntent waits for the customer (3-D Secure): no automatic retry
    until then."""
    inv = _of(emu, pi)
    if inv is None:
        return
    _attempted(inv)
    inv["next_payment_attempt"] = None
    emu.emit("invoice.payment_action_required", inv, account=inv["_account"])
    from .subscriptions import invoice_unpaid
    invoice_unpaid(emu, inv, False)


def void(emu, inv):
    """The invoice can no longer be paid: `void`, its PaymentIntent canceled
    (`void_invoice`), its InvoicePayment canceled, `invoice.voided`."""
    account = inv["_account"]
    now = emu.now()
    inv.update(status="void", auto_advance=False, next_payment_attempt=None,
               automatically_finalizes_at=None)
    inv["status_transitions"]["voided_at"] = now
    pi = emu.store.find(inv["_pi"] or "")
    if pi is not None and pi["status"] in CONFIRMABLE:
        pi.update(status="canceled", canceled_at=now, next_action=None,
                  cancellation_reason="void_invoice")
        emu.emit("payment_intent.canceled", pi, account=account)
    for pid in inv["_payments"]:
        payment = emu.store.find(pid)
        if payment["status"] == "open":
            payment["status"] = "canceled"
            payment["status_transitions"]["canceled_at"] = now
    emu.emit("invoice.voided", inv, account=account)


def stop_collection(emu, inv):
    """No more automatic collection of the invoice (its subscription ended)."""
    if inv["status"] in ("draft", "open"):
        inv.update(auto_advance=False, next_payment_attempt=None,
                   automatically_finalizes_at=None)


# rendering -----------------------------------------------------------------------------

def render_invoice(emu, obj, out):
    """The invoice's `lines` (its `payments` and `confirmation_secret` only when expanded)."""
    out["lines"] = sublist(emu, list(reversed(obj["_lines"])),
                           "/v1/invoices/%s/lines" % obj["id"])


def includable(emu, inv, field):
    """`expand[]=payments` / `expand[]=confirmation_secret` of an invoice."""
    if field == "payments":
        return sublist(emu, inv["_payments"], "/v1/invoices/%s/payments" % inv["id"])
    pi = emu.store.find(inv["_pi"] or "")
    if pi is None:
        return None
    return {"client_secret": pi["client_secret"], "type": "payment_intent"}


# endpoints -----------------------------------------------------------------------------

def _get(ctx):
    inv = ctx.emu.store.find(ctx.args["iid"])
    if inv is None or inv["_kind"] != "invoice" or inv["_account"] != ctx.account:
        raise not_found("invoice", ctx.args["iid"])
    return inv


@route("GET", "/v1/invoices/<iid>")
def retrieve_invoice(ctx):
    """GET /v1/invoices/{id}."""
    return show(ctx, _get(ctx))


@route("GET", "/v1/invoices")
def list_invoices(ctx):
    """GET /v1/invoices with customer / subscription / status / collection_method filters."""
    p = ctx.params
    customer, sub, status = p.str("customer"), p.str("subscription"), p.str("status")
    method = p.str("collection_method")
    if p.has("due_date"):
        raise unsupported("due_date")
    return list_response(
        ctx, "invoice", "/v1/invoices",
        lambda i: customer in (None, i["customer"]) and sub in (None, i["_subscription"])
        and status in (None, i["status"]) and method in (None, i["collection_method"]),
        extra=("customer", "subscription", "status", "collection_method", "due_date"))


@route("GET", "/v1/invoices/<iid>/lines")
def list_invoice_lines(ctx):
    """GET /v1/invoices/{id}/lines (in the invoice's order)."""
    p = ctx.params.check("limit", "starting_after", "ending_before")
    inv = _get(ctx)
    lines = [ctx.emu.store.find(li) for li in reversed(inv["_lines"])]
    return paginate(lines, p, "/v1/invoices/%s/lines" % inv["id"], ctx.emu.render)


@route("POST", "/v1/invoices/<iid>")
def update_invoice(ctx):
    """POST /v1/invoices/{id}: metadata; while a draft, description, application_fee_amount
    and transfer_data ("" unsets it; a fee cannot be unset, nor stay without transfer_data on
    the platform); auto_advance while draft or open."""
    p = ctx.params.check("metadata", "description", "application_fee_amount", "transfer_data", "auto_advance")
    emu = ctx.emu
    inv = _get(ctx)
    if inv["status"] in ("paid", "void", "uncollectible") and any(
            p.has(k) for k in ("description", "application_fee_amount", "transfer_data", "auto_advance")):
        raise StripeError("This invoice is %s and can no longer be changed, except for its "
                          "metadata." % inv["status"], code="invoice_not_editable")
    if inv["status"] != "draft":
        for key in ("description", "application_fee_amount", "transfer_data"):
            if p.has(key):
                raise StripeError("You can only change `%s` on a draft invoice; this invoice "
                                  "is %s." % (key, inv["status"]), code="invoice_not_editable",
                                  param=key)
    previous = {}
    before = apply_metadata(inv, p)
    if before is not None:
        previous["metadata"] = before
    if p.has("description") and (p.str("description") or None) != inv["description"]:
        previous["description"] = inv["description"]
        inv["description"] = p.str("description") or None
    transfer_data = _invoice_transfer_data(ctx, p, inv) if p.has("transfer_data") else inv["_transfer_data"]
    fee = inv["_fee"]
    if p.has("application_fee_amount"):
        fee = p.int("application_fee_amount", required=True, minimum=0)  # it cannot be unset
        if fee > inv["amount_due"]:
            raise invalid("The application fee amount cannot exceed the amount due.",
                          "application_fee_amount")
    if fee is not None and ctx.is_platform and not transfer_data:
        raise invalid("Can only apply an application_fee_amount when the invoice is "
                      "attempting a direct payment (using an OAuth key or Stripe-Account "
                      "header) or destination payment (using `transfer_data[destination]`).",
                      "application_fee_amount")
    inv["_transfer_data"], inv["_fee"] = transfer_data, fee  # not on the object: no `previous`
    if p.has("auto_advance") and p.bool("auto_advance") != inv["auto_advance"]:
        previous["auto_advance"] = inv["auto_advance"]
        inv["auto_advance"] = p.bool("auto_advance")
        if inv["status"] == "draft":
            inv["automatically_finalizes_at"] = inv["next_payment_attempt"] = \
                inv["created"] + DRAFT_SECONDS if inv["auto_advance"] else None
        elif not inv["auto_advance"]:
            inv["next_payment_attempt"] = None
        elif inv["status"] == "open":  # collection resumed: the next retry of the schedule
            _schedule_retry(emu, inv)
    if previous:
        emu.emit("invoice.updated", inv, account=ctx.account, previous=previous)
    return show(ctx, inv)


def _invoice_transfer_data(ctx, p, inv):
    """A draft's `transfer_data` ({destination, amount}); "" unsets it (None)."""
    if p.raw("transfer_data") == "":
        return None
    td = supported(p.sub("transfer_data"), "transfer_data", "destination", "amount")
    dest = td.str("destination", required=True)
    if not ctx.is_platform:
        raise invalid("transfer_data cannot be used on a connected account.", "transfer_data")
    require_transfers(ctx.emu, dest, "transfer_data[destination]")
    amount = td.int("amount", minimum=0) if td.has("amount") else None
    if amount is not None and amount > inv["amount_due"]:
        raise invalid("The transfer amount cannot exceed the amount due.", "transfer_data[amount]")
    return {"amount": amount, "destination": dest}


@route("POST", "/v1/invoices/<iid>/pay")
def pay_invoice(ctx):
    """POST /v1/invoices/{id}/pay: attempt an open invoice now (off-session unless
    `off_session=false`), with `payment_method` or the default one; a draft is finalized
    first. A decline answers 402 (`invoice.payment_failed` sent); 3-D Secure, 402
    `invoice_payment_intent_requires_action` off-session."""
    p = ctx.params.check("payment_method", "off_session")
    emu = ctx.emu
    inv = _get(ctx)
    if inv["status"] == "paid":
        raise StripeError("Invoice is already paid", code="invoice_already_paid")
    if inv["status"] not in ("draft", "open"):
        raise StripeError("You can only pay an invoice that is open; this invoice is %s."
                          % inv["status"], code="invoice_not_editable")
    if inv["status"] == "draft":
        finalize(emu, inv)
    if inv["status"] == "open":
        pm = None
        if p.has("payment_method"):
            pm = resolve(emu, ctx.account, p.str("payment_method"))
        collect(ctx, inv, pm, off_session=p.bool("off_session", True))
    return show(ctx, inv)


@route("POST", "/v1/invoices/<iid>/void")
def void_invoice(ctx):
    """POST /v1/invoices/{id}/void: an open invoice can no longer be paid (its PaymentIntent
    canceled); a past-due subscription with nothing else unpaid is active again."""
    ctx.params.check()
    emu = ctx.emu
    inv = _get(ctx)
    if inv["status"] != "open":
        raise StripeError("You can only void an open invoice; this invoice is %s."
                          % inv["status"], code="invoice_not_editable")
    void(emu, inv)
    from .subscriptions import invoice_paid
    invoice_paid(emu, inv, None, voided=True)
    return show(ctx, inv)


# invoice payments ----------------------------------------------------------------------

@route("GET", "/v1/invoice_payments/<ipid>")
def retrieve_invoice_payment(ctx):
    """GET /v1/invoice_payments/{id}."""
    return show(ctx, ctx.emu.store.get("invoice_payment", ctx.args["ipid"], ctx.account,
                                       "invoice_payment"))


@route("GET", "/v1/invoice_payments")
def list_invoice_payments(ctx):
    """GET /v1/invoice_payments with invoice / status / payment[payment_intent] filters."""
    p = ctx.params
    inv, status = p.str("invoice"), p.str("status")
    payment = p.sub("payment")
    for key in payment.data:
        if key not in ("type", "payment_intent"):
            raise unsupported("payment[%s]" % key)
    kind = payment.str("type")
    pi = payment.str("payment_intent")
    return list_response(
        ctx, "invoice_payment", "/v1/invoice_payments",
        lambda o: inv in (None, o["invoice"]) and status in (None, o["status"])
        and kind in (None, o["payment"]["type"])
        and pi in (None, o["payment"].get("payment_intent")),
        extra=("invoice", "status", "payment"))
