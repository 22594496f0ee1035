"""Checkout Sessions in `payment` mode, and the hosted page a shopper pays on.

As at the current API (since 2022-08-01): a session has no PaymentIntent until the shopper
pays (`payment_intent: null`), and a Customer is made only when required
(`customer_creation: if_required`: never, for a card payment). The session's `url` is the
emulator's hosted page (`GET /_emulator/checkout/{id}`): paying there makes the session's
PaymentIntent with `payment_intent_data` (destination, application fee, transfer group,
metadata, `setup_future_usage`, ...) and confirms it with the card given (its own events,
asynchronous capture and all), then completes the session (`checkout.session.completed`,
`payment_status: paid`) and redirects to `success_url`. A decline leaves the session open;
its next attempt confirms the same PaymentIntent. A session expires at `expires_at` (30
minutes to 24 hours after creation, 24 hours by default) when the clock passes it, or on
`/expire`: `checkout.session.expired`. `url` is null once the session is no longer open.
"""
from werkzeug.utils import redirect

from ..errors import StripeError, invalid, missing, not_found
from ..forms import Params
from ..routes import route
from ..shapes import complete
from ..state import clone
from ..store import paginate
from .common import currency, list_response, show
from .customers import find as find_customer
from .payment_intents import (CANCELABLE, CONFIRMABLE, attempt, authenticated, check_parties,
                              money_terms, open_intent)
from .payment_methods import resolve

PARAMS = ("mode", "line_items", "customer", "customer_email", "client_reference_id",
          "success_url", "cancel_url", "expires_at", "metadata", "payment_intent_data",
          "allowed_payment_method_types")
# What the emulator's hosted page takes: cards, which complete a session paid at once.
OFFERED = ("card",)
INTENT_DATA = ("application_fee_amount", "capture_method", "description", "metadata",
               "on_behalf_of", "receipt_email", "setup_future_usage", "statement_descriptor",
               "statement_descriptor_suffix", "transfer_data", "transfer_group")
SHORTEST, LONGEST, DEFAULT_LIFETIME = 30 * 60, 24 * 3600, 24 * 3600


def _supported(params, prefix, *names):
    """Refuse what Stripe takes under `prefix` but the emulator does not model."""
    for key in params.data:
        if key not in names:
            name = "%s[%s]" % (prefix, key)
            raise StripeError("The Stripe emulator does not support the parameter %s on this "
                              "endpoint (Stripe does)." % name,
                              code="emulator_unsupported_parameter", param=name, saved=False)
    return params


def _line_item(emu, raw, i):
    """One `line_items[i]` with `price_data` (Prices and Products are not modelled)."""
    where = "line_items[%d]" % i
    item = _supported(Params(raw), where, "price_data", "quantity", "metadata")
    if not item.has("quantity"):
        raise missing(where + "[quantity]")
    quantity = item.int("quantity", minimum=1)
    if not item.has("price_data"):
        raise missing(where + "[price_data]")
    data = _supported(item.sub("price_data"), where + "[price_data]", "currency",
                      "unit_amount", "product_data")
    if not data.has("unit_amount"):
        raise missing(where + "[price_data][unit_amount]")
    if not data.has("product_data"):
        raise missing(where + "[price_data][product_data]")
    product = _supported(data.sub("product_data"), where + "[price_data][product_data]",
                         "name", "description", "metadata")
    cur, unit = currency(data), data.int("unit_amount", minimum=0)
    price = complete({
        "id": emu.new_id("price"), "object": "price", "active": False,
        "billing_scheme": "per_unit", "created": emu.now(), "currency": cur,
        "custom_unit_amount": None, "livemode": False, "lookup_key": None,
        "metadata": {}, "nickname": None, "product": emu.new_id("prod"), "recurring": None,
        "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None,
        "type": "one_time", "unit_amount": unit, "unit_amount_decimal": str(unit)}, "price")
    amount = unit * quantity
    return {"id": emu.new_id("li"), "object": "item", "adjustable_quantity": None,
            "amount_discount": 0, "amount_subtotal": amount, "amount_tax": 0,
            "amount_total": amount, "currency": cur, "description": product.str("name"),
            "metadata": item.metadata() or {}, "price": price, "quantity": quantity}


def _line_items(emu, p):
    raw = p.list("line_items")
    if not raw:
        raise missing("line_items")
    items = [_line_item(emu, li, i) for i, li in enumerate(raw)]
    if len({li["currency"] for li in items}) > 1:
        raise invalid("All line items must be in the same currency.", "line_items")
    return items


def _allowed(p):
    """`allowed_payment_method_types`: a filter on the methods offered (the emulator offers
    cards only, so a filter without `card` leaves nothing to pay with)."""
    if not p.has("allowed_payment_method_types"):
        return None
    allowed = p.list("allowed_payment_method_types")
    if not all(isinstance(t, str) and t for t in allowed):
        raise invalid("Invalid array", "allowed_payment_method_types")
    if not any(t in OFFERED for t in allowed):
        raise invalid("No valid payment method types for this Checkout Session. Please ensure "
                      "that you have activated payment method types compatible with your "
                      "chosen currency in your dashboard.", "allowed_payment_method_types")
    return allowed


def _expires_at(emu, p):
    now = emu.now()
    expires_at = p.int("expires_at", now + DEFAULT_LIFETIME)
    if expires_at - now < SHORTEST:
        raise invalid("The `expires_at` timestamp must be at least 30 minutes from Checkout "
                      "Session creation.", "expires_at")
    if expires_at - now > LONGEST:
        raise invalid("The `expires_at` timestamp must be less than 24 hours from Checkout "
                      "Session creation.", "expires_at")
    return expires_at


def _intent_data(ctx, p, total, cur, customer):
    """`payment_intent_data` checked now as a PaymentIntent's parameters are: (the params the
    PaymentIntent is made with, its money terms)."""
    data = _supported(p.sub("payment_intent_data"), "payment_intent_data", *INTENT_DATA)
    data.str("capture_method", choices=("automatic", "automatic_async", "manual"))
    data.str("setup_future_usage", choices=("on_session", "off_session"))
    intent = dict(clone(data.data), amount=total, currency=cur)
    if customer:
        intent["customer"] = customer
    intent_params = Params(intent)
    terms = money_terms(ctx, intent_params, None)
    check_parties(ctx, intent_params, terms[3])
    return intent, terms


@route("POST", "/v1/checkout/sessions")
def create_session(ctx):
    """POST /v1/checkout/sessions (mode=payment, line_items with price_data)."""
    p = ctx.params.check(*PARAMS)
    emu = ctx.emu
    mode = p.str("mode")
    if mode is None:
        raise missing("mode")
    if mode != "payment":
        raise StripeError("The Stripe emulator supports Checkout Sessions in payment mode "
                          "only (Stripe also has setup and subscription mode).",
                          code="emulator_unsupported_parameter", param="mode", saved=False)
    customer = p.str("customer") or None
    if customer and p.has("customer_email"):
        raise invalid("You may only specify one of these parameters: customer, "
                      "customer_email.", "customer_email")
    if customer:
        find_customer(emu, ctx.account, customer)
    allowed = _allowed(p)
    items = _line_items(emu, p)
    total, cur = sum(li["amount_total"] for li in items), items[0]["currency"]
    intent, terms = _intent_data(ctx, p, total, cur, customer)
    sid = emu.new_id("cs_test")
    session = {
        "id": sid, "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": None,
        "allowed_payment_method_types": allowed, "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None,
                          "status": None},
        "billing_address_collection": None, "cancel_url": p.str("cancel_url"),
        "client_reference_id": p.str("client_reference_id"), "client_secret": None,
        "collected_information": None, "consent": None, "consent_collection": None,
        "created": emu.now(), "currency": cur, "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": customer, "customer_account": None,
        "customer_creation": None if customer else "if_required", "customer_details": None,
        "customer_email": p.str("customer_email"), "discounts": [],
        "expires_at": _expires_at(emu, p), "integration_identifier": None, "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": {
            "account_tax_ids": None, "custom_fields": None, "description": None,
            "footer": None, "issuer": None, "metadata": {}, "rendering_options": None}},
        "livemode": False, "locale": None, "managed_payments": None,
        "metadata": p.metadata() or {}, "mode": "payment", "origin_context": None,
        "payment_intent": None, "payment_link": None, "payment_method_collection": "always",
        "payment_method_configuration_details": {"id": "pmc_emulator_default",
                                                 "parent": None},
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "payment_status": "unpaid", "permissions": None,
        "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "saved_payment_method_options": {"allow_redisplay_filters": ["always"],
                                         "payment_method_remove": None,
                                         "payment_method_save": None} if customer else None,
        "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
        "shipping_options": [], "status": "open", "submit_type": None, "subscription": None,
        "success_url": p.str("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page", "url": "%s_emulator/checkout/%s" % (ctx.base_url, sid),
        "wallet_options": None, "_line_items": items, "_intent": intent, "_terms": terms,
    }
    emu.store.add("checkout.session", ctx.account, session)
    return show(ctx, session)


def _get(ctx):
    return ctx.emu.store.get("checkout.session", ctx.args["csid"], ctx.account,
                             "checkout.session", "session")


@route("GET", "/v1/checkout/sessions/<csid>")
def retrieve_session(ctx):
    """GET /v1/checkout/sessions/{id} (`expand[]=line_items` includes them)."""
    return show(ctx, _get(ctx))


@route("GET", "/v1/checkout/sessions")
def list_sessions(ctx):
    """GET /v1/checkout/sessions with payment_intent / customer / status filters."""
    p = ctx.params
    pi, customer, status = p.str("payment_intent"), p.str("customer"), p.str("status")
    return list_response(ctx, "checkout.session", "/v1/checkout/sessions",
                         lambda s: pi in (None, s["payment_intent"])
                         and customer in (None, s["customer"])
                         and status in (None, s["status"]),
                         extra=("payment_intent", "customer", "status"))


def _render_item(item):
    return complete(clone(item), "item")


def line_items(session):
    """The session's line items as the embedded list `expand[]=line_items` shows."""
    items = session["_line_items"]
    return {"object": "list", "data": [_render_item(li) for li in items], "has_more": False,
            "url": "/v1/checkout/sessions/%s/line_items" % session["id"]}


@route("GET", "/v1/checkout/sessions/<csid>/line_items")
def list_line_items(ctx):
    """GET /v1/checkout/sessions/{id}/line_items (in the order given)."""
    p = ctx.params.check("limit", "starting_after", "ending_before")
    session = _get(ctx)
    return paginate(list(reversed(session["_line_items"])), p,
                    "/v1/checkout/sessions/%s/line_items" % session["id"], _render_item)


def expire(emu, session):
    """The session can take no payment any more: `checkout.session.expired`; its
    PaymentIntent (made by an attempt to pay that failed) is canceled with it."""
    session.update(status="expired", url=None)
    pi = session["payment_intent"] and emu.store.find(session["payment_intent"])
    if pi and pi["status"] in CANCELABLE:
        pi.update(status="canceled", canceled_at=emu.now(), amount_capturable=0, next_action=None,
                  cancellation_reason="expired")
        emu.emit("payment_intent.canceled", pi, account=session["_account"])
    emu.emit("checkout.session.expired", session, account=session["_account"])


def expire_due(emu):
    """Expire every open session whose `expires_at` the clock has passed."""
    now = emu.now()
    for (kind, _), sessions in list(emu.store.lists.items()):
        if kind != "checkout.session":
            continue
        for session in sessions:
            if session["status"] == "open" and session["expires_at"] <= now:
                expire(emu, session)


@route("POST", "/v1/checkout/sessions/<csid>/expire")
def expire_session(ctx):
    """POST /v1/checkout/sessions/{id}/expire: only an open session."""
    ctx.params.check()
    session = _get(ctx)
    if session["status"] != "open":
        raise StripeError('Only Checkout Sessions with a status in ["open"] can be expired. '
                          "This Checkout Session has a status of `%s`." % session["status"])
    expire(ctx.emu, session)
    return show(ctx, session)


# the hosted page -----------------------------------------------------------------------

def _success_url(session):
    url = session["success_url"]
    return url and url.replace("{CHECKOUT_SESSION_ID}", session["id"])


def _intent(emu, session):
    """The session's PaymentIntent, made at the first attempt to pay."""
    if session["payment_intent"] is None:
        pi = open_intent(emu, session["_account"], Params(clone(session["_intent"])),
                         session["_terms"], automatic=False)
        pi["_checkout_session"] = session["id"]
        session["payment_intent"] = pi["id"]
    return emu.store.find(session["payment_intent"])


def _declined(emu, pi):
    """The 402 the page shows when the attempt failed after 3-D Secure."""
    error = pi["last_payment_error"]
    return StripeError(error["message"], type=error["type"], code=error.get("code"),
                       decline_code=error.get("decline_code"), status=402,
                       extra={"payment_intent": emu.render(pi)})


def pay(ctx, session, pm_id, email=None):
    """The shopper pays with `pm_id` (3-D Secure, when the card asks, completed on the
    page): the PaymentIntent is confirmed and the session completed; a decline raises."""
    emu = ctx.emu
    customer = session["customer"] and emu.store.find(session["customer"])
    email = (customer and customer["email"]) or session["customer_email"] or email
    pm = resolve(emu, session["_account"], pm_id)
    pm["billing_details"]["email"] = email
    pi = _intent(emu, session)
    if pi["status"] not in CONFIRMABLE:  # canceled meanwhile by the platform
        raise StripeError("This Checkout Session is no longer active.", status=410)
    attempt(ctx, pi, pm, Params({}))
    if pi["status"] == "requires_action":
        authenticated(emu, pi)
    if pi["status"] not in ("succeeded", "requires_capture"):
        raise _declined(emu, pi)
    session.update(
        status="complete", url=None,
        payment_status="paid" if pi["status"] == "succeeded" else "unpaid",
        customer_details={"address": {"city": None, "country": None, "line1": None,
                                      "line2": None, "postal_code": None, "state": None},
                          "business_name": None, "email": email, "individual_name": None,
                          "name": None, "phone": None, "tax_exempt": "none", "tax_ids": []})
    emu.emit("checkout.session.completed", session, account=session["_account"])


@route("GET", "/_emulator/checkout/<csid>")
def hosted_page(ctx):
    """GET on a session's `url`: pay (`?payment_method=`, default `pm_card_visa`; `email`
    when the session knows none) or `?outcome=cancel`; answers where the shopper is sent
    (success_url, cancel_url), or the session when it names no URL."""
    p = ctx.params
    emu = ctx.emu
    outcome = p.str("outcome", "pay", choices=("pay", "cancel"))
    with emu.lock:
        expire_due(emu)
        session = emu.store.find(ctx.args["csid"])
        if session is None or session["_kind"] != "checkout.session":
            raise not_found("checkout.session", ctx.args["csid"])
        if outcome == "cancel":
            target = session["cancel_url"]
        elif session["status"] == "expired":
            raise StripeError("This Checkout Session is no longer active.", status=410)
        else:
            if session["status"] == "open":
                pay(ctx, session, p.str("payment_method", "pm_card_visa"), p.str("email"))
                emu.after_change()
            target = _success_url(session)
        out = emu.render(session)
    return redirect(target) if target else out
