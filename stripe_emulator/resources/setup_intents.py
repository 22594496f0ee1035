"""SetupIntents: saving a card on a customer for later, without a payment.

Confirming attaches the PaymentMethod (a new one for a test id) to the SetupIntent's
customer (`payment_method.attached`, then `setup_intent.succeeded`) and sets the card up
for off-session use. A card that needs 3-D Secure goes to `requires_action` until the
customer completes it (the `authenticate` control or the `next_action` URL); a declining
card fails the setup (402, `last_setup_error`, `setup_intent.setup_failed`), back to
`requires_payment_method`. Automatic payment methods are on by default, so confirming
needs a `return_url` unless redirects are off, as for PaymentIntents.
"""
from ..errors import StripeError, invalid
from ..routes import route
from .cards import decline_message
from .common import apply_metadata, list_response, show
from .customers import find as find_customer
from .payment_intents import RETURN_URL_NEEDED, next_action
from .payment_methods import attach_now, card_of, check_usable, refuses_setup, resolve, used

CREATE_PARAMS = ("customer", "payment_method", "usage", "confirm", "automatic_payment_methods",
                 "return_url", "metadata", "description", "use_stripe_sdk")
CONFIRM_PARAMS = ("payment_method", "return_url", "use_stripe_sdk")
UPDATE_PARAMS = ("customer", "payment_method", "metadata", "description")
CANCELABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
MISSING_PAYMENT_METHOD = (
    "You cannot confirm this SetupIntent because it's missing a payment method. You can "
    "either update the SetupIntent with a payment method and then confirm it again, or "
    "confirm it again directly with a payment method or ConfirmationToken.")
AUTHENTICATION_FAILED = (
    "The provided payment method has failed authentication. Provide a new payment method to "
    "attempt to fulfill this SetupIntent again.")


def _unexpected(ctx, si, message):
    return StripeError(message, code="setup_intent_unexpected_state",
                       extra={"setup_intent": show(ctx, si)})


def _check_owner(ctx, pm, customer, si=None):
    """The PaymentMethod must be the SetupIntent's customer's or attached to none (the
    error carries the SetupIntent once there is one)."""
    check_usable(pm)
    owner = pm["customer"]
    if not owner or owner == customer:
        return
    extra = {"setup_intent": show(ctx, si)} if si is not None else None
    if customer is None:
        raise StripeError("The payment method supplied (%s) belongs to the Customer %s. Please "
                          "include the Customer in the `customer` parameter on the SetupIntent."
                          % (pm["id"], owner), param="payment_method", extra=extra)
    raise StripeError("The PaymentMethod %s does not belong to the Customer you supplied %s. "
                      "Please use this PaymentMethod with the Customer that it belongs to "
                      "instead." % (pm["id"], customer), param="payment_method", extra=extra)


def _automatic_payment_methods(p):
    if not p.has("automatic_payment_methods"):
        return {"allow_redirects": "always", "enabled": True}
    apm = p.sub("automatic_payment_methods")
    return {"enabled": apm.bool("enabled"),
            "allow_redirects": apm.str("allow_redirects", "always",
                                       choices=("always", "never"))}


@route("POST", "/v1/setup_intents")
def create_setup_intent(ctx):
    """POST /v1/setup_intents (optionally confirm=true)."""
    p = ctx.params.check(*CREATE_PARAMS)
    emu = ctx.emu
    customer = p.str("customer") or None
    if customer:
        find_customer(emu, ctx.account, customer)
    pm = resolve(emu, ctx.account, p.str("payment_method")) if p.has("payment_method") \
        else None
    if pm is not None:
        _check_owner(ctx, pm, customer)
    sid = emu.new_id("seti")
    apm = _automatic_payment_methods(p)
    si = {
        "id": sid, "object": "setup_intent", "application": None,
        "automatic_payment_methods": apm, "cancellation_reason": None,
        "client_secret": "%s_secret_%s" % (sid, emu.new_id("s")[2:]), "created": emu.now(),
        "customer": customer, "customer_account": None, "description": p.str("description"),
        "excluded_payment_method_types": None, "flow_directions": None,
        "last_setup_error": None, "latest_attempt": None, "livemode": False, "mandate": None,
        "metadata": {}, "next_action": None, "on_behalf_of": None,
        "payment_method": pm and pm["id"],
        "payment_method_configuration_details": {"id": "pmc_emulator_default",
                                                 "parent": None} if apm["enabled"] else None,
        "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                            "request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "single_use_mandate": None,
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "usage": p.str("usage", "off_session", choices=("on_session", "off_session")),
    }
    apply_metadata(si, p)
    emu.store.add("setup_intent", ctx.account, si)
    emu.emit("setup_intent.created", si, account=ctx.account)
    if p.bool("confirm", False):
        _confirm(ctx, si, pm, p)
    return show(ctx, si)


def _confirm(ctx, si, pm, p):
    """One attempt to set up the (stored) PaymentMethod `pm`."""
    if pm is None:
        raise _unexpected(ctx, si, MISSING_PAYMENT_METHOD)
    if si["status"] == "succeeded":
        raise _unexpected(ctx, si, "You cannot confirm this SetupIntent because it has "
                                   "already succeeded.")
    if si["status"] == "canceled":
        raise _unexpected(ctx, si, "You cannot confirm this SetupIntent because it has been "
                                   "canceled.")
    return_url = p.str("return_url")
    apm = si["automatic_payment_methods"] or {}
    if apm.get("enabled") and apm.get("allow_redirects") != "never" and not return_url:
        raise invalid(RETURN_URL_NEEDED, "return_url")
    _check_owner(ctx, pm, si["customer"], si)
    emu = ctx.emu
    si.update(payment_method=pm["id"], status="requires_confirmation")
    info = card_of(emu, pm["id"])
    if info.behaviour == "authenticate":
        si.update(status="requires_action", _return_url=return_url,
                  next_action=next_action(ctx, "setup_intents", si, return_url))
        emu.emit("setup_intent.requires_action", si, account=si["_account"])
        return
    if refuses_setup(pm):
        raise setup_failed(emu, si, info.code, info.decline_code)
    succeed(emu, si)


def succeed(emu, si):
    """Set up: attached to the customer, ready for off-session payments."""
    pm_id = si["payment_method"]
    if si["customer"]:
        attach_now(emu, emu.store.find(pm_id), si["customer"])
        emu.set_up(si["customer"], pm_id)
    used(emu, pm_id)
    si.update(status="succeeded", next_action=None, last_setup_error=None)
    emu.emit("setup_intent.succeeded", si, account=si["_account"])


def _failed(emu, si, error):
    """The attempt failed: payable again with another PaymentMethod."""
    pm_id = si["payment_method"]
    used(emu, pm_id)
    error["payment_method"] = emu.render(emu.store.find(pm_id))
    si.update(status="requires_payment_method", next_action=None, payment_method=None,
              last_setup_error=error)
    emu.emit("setup_intent.setup_failed", si, account=si["_account"])


def setup_failed(emu, si, code, decline_code=None):
    """The card declined the setup; the 402 to answer (when someone is there to answer)."""
    decline_code = decline_code or code
    message = decline_message(card_of(emu, si["payment_method"]), decline_code)
    error = {"type": "card_error", "code": code, "decline_code": decline_code,
             "message": message,
             "doc_url": "https://docs.stripe.com/error-codes/" + code.replace("_", "-")}
    if code == "expired_card":
        error["param"] = "exp_month"
    _failed(emu, si, error)
    return StripeError(message, type="card_error", code=code, status=402,
                       decline_code=decline_code, param=error.get("param"),
                       headers={"Stripe-Should-Retry": "false"},
                       extra={"setup_intent": emu.render(si),
                              "payment_method": error["payment_method"]})


def authenticated(emu, si):
    """The customer completed 3-D Secure: set up, or declined if the card then declines."""
    info = card_of(emu, si["payment_method"])
    if info.after != "succeed":
        setup_failed(emu, si, "card_declined", info.after)
        return
    succeed(emu, si)


def authentication_failed(emu, si):
    """3-D Secure failed: back to requires_payment_method."""
    _failed(emu, si, {"type": "invalid_request_error",
                      "code": "setup_intent_authentication_failure",
                      "doc_url": "https://docs.stripe.com/error-codes/"
                                 "setup-intent-authentication-failure",
                      "message": AUTHENTICATION_FAILED})


def _get(ctx):
    return ctx.emu.store.get("setup_intent", ctx.args["sid"], ctx.account, "setupintent",
                             "intent")


@route("POST", "/v1/setup_intents/<sid>/confirm")
def confirm_setup_intent(ctx):
    """POST /v1/setup_intents/{id}/confirm."""
    p = ctx.params.check(*CONFIRM_PARAMS)
    si = _get(ctx)
    pm = resolve(ctx.emu, ctx.account, p.str("payment_method")) if p.has("payment_method") \
        else si["payment_method"] and ctx.emu.store.find(si["payment_method"])
    _confirm(ctx, si, pm, p)
    return show(ctx, si)


@route("GET", "/v1/setup_intents/<sid>")
def retrieve_setup_intent(ctx):
    """GET /v1/setup_intents/{id}."""
    ctx.params.check("client_secret")
    return show(ctx, _get(ctx))


@route("POST", "/v1/setup_intents/<sid>")
def update_setup_intent(ctx):
    """POST /v1/setup_intents/{id}: customer, payment_method, description, metadata."""
    p = ctx.params.check(*UPDATE_PARAMS)
    emu = ctx.emu
    si = _get(ctx)
    customer = si["customer"]
    if p.has("customer"):
        customer = p.str("customer") or None
        if customer:
            find_customer(emu, ctx.account, customer)
    if p.has("payment_method"):
        if si["status"] in ("succeeded", "canceled"):
            raise _unexpected(ctx, si, "You cannot update this SetupIntent because it has %s."
                              % ("already succeeded" if si["status"] == "succeeded"
                                 else "been canceled"))
        pm = resolve(emu, ctx.account, p.str("payment_method"))
        _check_owner(ctx, pm, customer, si)
        si["payment_method"] = pm["id"]
        if si["status"] == "requires_payment_method":
            si["status"] = "requires_confirmation"
    si["customer"] = customer
    if p.has("description"):
        si["description"] = p.str("description") or None
    apply_metadata(si, p)
    return show(ctx, si)


@route("POST", "/v1/setup_intents/<sid>/cancel")
def cancel_setup_intent(ctx):
    """POST /v1/setup_intents/{id}/cancel (`setup_intent.canceled`)."""
    p = ctx.params.check("cancellation_reason")
    si = _get(ctx)
    if si["status"] == "canceled":
        raise _unexpected(ctx, si, "You cannot cancel this SetupIntent because it is already "
                                   "canceled.")
    if si["status"] not in CANCELABLE:
        raise _unexpected(ctx, si, "You cannot cancel this SetupIntent because it has a status "
                          "of %s. Only a SetupIntent with one of the following statuses may be "
                          "canceled: `requires_payment_method`, `requires_confirmation`, or "
                          "`requires_action`." % si["status"])
    si.update(status="canceled", next_action=None, cancellation_reason=p.str(
        "cancellation_reason", choices=("abandoned", "duplicate", "requested_by_customer")))
    ctx.emu.emit("setup_intent.canceled", si, account=ctx.account)
    return show(ctx, si)


@route("GET", "/v1/setup_intents")
def list_setup_intents(ctx):
    """GET /v1/setup_intents with customer / payment_method filters."""
    p = ctx.params
    customer, pm = p.str("customer"), p.str("payment_method")
    return list_response(ctx, "setup_intent", "/v1/setup_intents",
                         lambda si: customer in (None, si["customer"])
                         and pm in (None, si["payment_method"]),
                         extra=("customer", "payment_method"))
