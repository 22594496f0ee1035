"""PaymentIntents: create, confirm (test cards), 3-D Secure, capture, cancel, update, list, search.

As the current API does: automatic payment methods are on by default (confirming then needs
a `return_url` unless redirects are off or the payment is off-session); the default capture
method is `automatic_async`; `payment_method_types` is no longer accepted. 3-D Secure is
completed by the customer only (the `authenticate` control or the `next_action` URL):
confirming again starts a new attempt that needs authentication again. Off-session (or
`error_on_requires_action`) payments with a card that needs authentication fail with
`authentication_required`, back to `requires_payment_method`. A test id
(`pm_card_visa`) becomes a PaymentMethod of its own; with a `customer`, the PaymentMethod
must be that customer's or attached to none, and `setup_future_usage` attaches it to the
customer when the payment succeeds. An invoice's PaymentIntent (invoices.py makes it) tells
its invoice what became of each attempt (paid, failed, waiting for 3-D Secure), by whatever
path it was confirmed; it cannot be canceled nor have its money terms changed.
"""
from ..errors import StripeError, invalid
from ..routes import route
from .accounts import require_transfers
from .cards import decline_message
from .charges import capture, card_charge
from .common import apply_metadata, check_amount, currency, list_response, show
from .customers import find as find_customer
from .payment_methods import attach_now, card_of, check_usable, resolve, used
from .search import search_response

CREATE_PARAMS = ("amount", "currency", "payment_method", "confirm", "capture_method",
                 "confirmation_method", "transfer_data", "application_fee_amount",
                 "on_behalf_of", "transfer_group", "metadata", "description",
                 "receipt_email", "statement_descriptor", "statement_descriptor_suffix",
                 "customer", "return_url", "automatic_payment_methods", "setup_future_usage",
                 "off_session", "error_on_requires_action", "payment_method_options",
                 "use_stripe_sdk", "shipping")
CONFIRM_PARAMS = ("payment_method", "return_url", "off_session", "error_on_requires_action",
                  "payment_method_options", "use_stripe_sdk", "receipt_email",
                  "setup_future_usage", "shipping", "capture_method")
UPDATE_PARAMS = ("amount", "currency", "payment_method", "metadata", "description",
                 "receipt_email", "transfer_data", "application_fee_amount", "transfer_group",
                 "statement_descriptor", "statement_descriptor_suffix", "customer",
                 "setup_future_usage", "shipping", "capture_method", "payment_method_options")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = CONFIRMABLE + ("requires_capture", "processing")
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
RETURN_URL_NEEDED = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "
    "Because some of these payment methods might redirect your customer off of your page, "
    "you must provide a `return_url`. If you don't want to accept redirect-based payment "
    "methods, set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents "
    "and Payment Intents.")


def money_terms(ctx, p, pi):
    """Apply amount, currency, transfer_data and application fee, checking them together."""
    cur = currency(p) if p.has("currency") or pi is None else pi["currency"]
    amount = p.int("amount", required=pi is None) if p.has("amount") or pi is None \
        else pi["amount"]
    check_amount(amount, cur)
    fee = p.int("application_fee_amount", minimum=0) if p.has("application_fee_amount") \
        else (pi or {}).get("application_fee_amount")
    transfer_data = (pi or {}).get("transfer_data")
    if p.has("transfer_data"):
        td = p.sub("transfer_data")
        dest = td.str("destination", required=pi is None or transfer_data is None)
        transfer_data = {"destination": dest or transfer_data["destination"]}
        if td.has("amount"):
            transfer_data["amount"] = td.int("amount", minimum=0)
        if not ctx.is_platform:
            raise invalid("transfer_data cannot be used on a connected account.",
                          "transfer_data")
        require_transfers(ctx.emu, transfer_data["destination"], "transfer_data[destination]")
    if fee is not None and fee > amount:
        raise invalid("The application fee amount cannot exceed the amount.",
                      "application_fee_amount")
    if transfer_data and transfer_data.get("amount") is not None:
        if transfer_data["amount"] > amount:
            raise invalid("transfer_data[amount] cannot exceed the amount.",
                          "transfer_data[amount]")
        if fee is not None:
            raise invalid("You cannot use both application_fee_amount and "
                          "transfer_data[amount].", "application_fee_amount")
    if fee is not None and ctx.is_platform and not transfer_data:
        raise invalid("Can only apply an application_fee_amount when the PaymentIntent is "
                      "attempting a direct payment (using an OAuth key or Stripe-Account "
                      "header) or destination payment (using `transfer_data[destination]`).",
                      "application_fee_amount")
    return amount, cur, fee, transfer_data


def _payment_method(ctx, p):
    """The PaymentMethod the `payment_method` parameter names (a new one for a test id)."""
    pm_id = p.str("payment_method")
    return resolve(ctx.emu, ctx.account, pm_id) if pm_id is not None else None


def _customer(ctx, p):
    """The `customer` parameter, an existing customer of the account."""
    cid = p.str("customer")
    if cid:
        find_customer(ctx.emu, ctx.account, cid)
    return cid or None


def _automatic_payment_methods(p):
    if not p.has("automatic_payment_methods"):
        return {"allow_redirects": "always", "enabled": True}
    apm = p.sub("automatic_payment_methods")
    return {"enabled": apm.bool("enabled"),
            "allow_redirects": apm.str("allow_redirects", "always",
                                       choices=("always", "never"))}


@route("POST", "/v1/payment_intents")
def create_payment_intent(ctx):
    """POST /v1/payment_intents (optionally confirm=true)."""
    p = ctx.params.check(*CREATE_PARAMS)
    emu = ctx.emu
    terms = money_terms(ctx, p, None)
    check_parties(ctx, p, terms[3])
    _customer(ctx, p)
    pm = _payment_method(ctx, p)
    pi = open_intent(emu, ctx.account, p, terms, pm and pm["id"])
    if p.bool("confirm", False):
        if not pm:
            raise StripeError("You cannot confirm this PaymentIntent because it's missing a "
                              "payment method.", code="payment_intent_unexpected_state",
                              param="payment_method", extra={"payment_intent": show(ctx, pi)})
        attempt(ctx, pi, pm, p)
    return show(ctx, pi)


def check_parties(ctx, p, transfer_data):
    """`on_behalf_of` exists; the destination may be paid from the platform's region."""
    emu = ctx.emu
    if p.has("on_behalf_of"):
        emu.store.get("account", p.str("on_behalf_of"), emu.platform_id, "account",
                      "on_behalf_of")
    if transfer_data:
        from .accounts import check_destination_region
        check_destination_region(emu, transfer_data["destination"], p.str("on_behalf_of"))


def open_intent(emu, account, p, terms, pm=None, automatic=True):
    """Store a new PaymentIntent of `account` from checked parameters and money terms
    (`automatic=False`: one Checkout makes, with no automatic payment methods)."""
    amount, cur, fee, transfer_data = terms
    pid = emu.new_id("pi")
    pi = {
        "id": pid, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": 0, "application": None,
        "application_fee_amount": fee,
        "automatic_payment_methods": _automatic_payment_methods(p) if automatic else None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": p.str("capture_method", "automatic_async", choices=CAPTURE_METHODS),
        "client_secret": "%s_secret_%s" % (pid, emu.new_id("s")[2:]),
        "confirmation_method": p.str("confirmation_method", "automatic",
                                     choices=("automatic", "manual")),
        "created": emu.now(), "currency": cur, "customer": p.str("customer") or None,
        "customer_account": None, "description": p.str("description"),
        "excluded_payment_method_types": None, "last_payment_error": None,
        "latest_charge": None, "livemode": False, "metadata": {}, "next_action": None,
        "on_behalf_of": p.str("on_behalf_of"), "payment_method": pm,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"installments": None, "mandate_options": None,
                                            "network": None,
                                            "request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "processing": None,
        "receipt_email": p.str("receipt_email"), "review": None,
        "setup_future_usage": p.str("setup_future_usage"), "shipping": None,
        "source": None, "statement_descriptor": p.str("statement_descriptor"),
        "statement_descriptor_suffix": p.str("statement_descriptor_suffix"),
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "transfer_data": transfer_data, "transfer_group": p.str("transfer_group"),
    }
    if automatic and pi["automatic_payment_methods"]["enabled"]:
        pi["payment_method_configuration_details"] = {"id": "pmc_emulator_default",
                                                      "parent": None}
    apply_metadata(pi, p)
    emu.store.add("payment_intent", account, pi)
    emu.emit("payment_intent.created", pi, account=account)
    return pi


def _get(ctx):
    return ctx.emu.store.get("payment_intent", ctx.args["pid"], ctx.account,
                             "payment_intent", "intent")


def _unexpected(ctx, pi, action):
    return StripeError(
        "This PaymentIntent's %s could not be completed because it has a status of %s."
        % (action, pi["status"]), code="payment_intent_unexpected_state",
        extra={"payment_intent": show(ctx, pi)})


def _off_session(p):
    value = p.raw("off_session")
    return value not in (None, "", "false", False)


def _check_owner(ctx, pi, pm):
    """Stripe's refusals of a PaymentMethod the PaymentIntent may not use."""
    check_usable(pm)
    owner = pm["customer"]
    if owner and pi["customer"] is None:
        raise StripeError(
            "The `payment_method` parameter supplied %s belongs to the Customer %s. Please "
            "include the Customer in the `customer` parameter on the PaymentIntent."
            % (pm["id"], owner), code="parameter_missing", param="source",
            extra={"payment_intent": show(ctx, pi)})
    if owner and owner != pi["customer"]:
        raise StripeError(
            "The PaymentMethod %s does not belong to the Customer you supplied %s. Please use "
            "this PaymentMethod with the Customer that it belongs to instead."
            % (pm["id"], pi["customer"]), param="payment_method",
            extra={"payment_intent": show(ctx, pi)})


def attempt(ctx, pi, pm, p, billing=False):
    """Run one confirmation attempt of `pi` with the (stored) PaymentMethod `pm`.

    `billing`: an invoice's collection by Stripe Billing, where a card that needs
    authentication leaves the PaymentIntent in `requires_action` (the customer is asked to
    authenticate) even off-session, instead of failing with `authentication_required`."""
    emu = ctx.emu
    off_session = _off_session(p)
    return_url = p.str("return_url")
    apm = pi["automatic_payment_methods"] or {}
    if apm.get("enabled") and apm.get("allow_redirects") != "never" and not return_url \
            and not off_session:
        raise invalid(RETURN_URL_NEEDED, "return_url")
    _check_owner(ctx, pi, pm)
    pi["status"] = "requires_confirmation"
    if p.has("capture_method"):
        pi["capture_method"] = p.str("capture_method", choices=CAPTURE_METHODS)
    if p.has("setup_future_usage"):
        pi["setup_future_usage"] = p.str("setup_future_usage")
    pi["payment_method"] = pm_id = pm["id"]
    info = card_of(emu, pm_id)
    if info.behaviour == "authenticate" and _needs_authentication(emu, pi, info, off_session):
        if (off_session and not billing) or p.bool("error_on_requires_action", False):
            raise failed_attempt(emu, pi, pm_id, "authentication_required",
                                 code="authentication_required")
        pi.update(status="requires_action", _return_url=return_url,
                  next_action=next_action(ctx, "payment_intents", pi, return_url))
        emu.emit("payment_intent.requires_action", pi, account=pi["_account"])
        if pi.get("_invoice"):
            from .invoices import payment_action_required
            payment_action_required(emu, pi)
        return
    if info.behaviour == "decline":
        raise failed_attempt(emu, pi, pm_id, info.decline_code, code=info.code)
    succeed(emu, pi, pm_id)


def _needs_authentication(emu, pi, info, off_session):
    """Whether this attempt needs 3-D Secure (how the card behaves, whether it was set up)."""
    if info.when == "always":
        return True
    if info.when == "on_session":
        return not off_session
    return not emu.is_set_up(pi.get("customer"), pi["payment_method"])


needs_authentication = _needs_authentication


def next_action(ctx, kind, intent, return_url):
    """3-D Secure for the customer: a redirect with a `return_url`, else Stripe.js's."""
    url = "%s_emulator/%s/%s/authenticate" % (ctx.base_url, kind, intent["id"])
    if return_url:
        return {"type": "redirect_to_url",
                "redirect_to_url": {"url": url, "return_url": return_url}}
    return {"type": "use_stripe_sdk",
            "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": url,
                               "source": "src_" + intent["id"].split("_", 1)[1]}}


def failed_attempt(emu, pi, pm, decline_code, code="card_declined"):
    """A failed attempt: a failed charge, the PaymentIntent payable again; the 402 to answer."""
    info = card_of(emu, pm)
    account = pi["_account"]
    charge = card_charge(emu, pi, pm, ok=False, decline=decline_code, code=code)
    used(emu, pm)
    shown = emu.render(emu.store.find(pm))
    message = decline_message(info, decline_code or code)
    error = {"type": "card_error", "code": code, "message": message,
             "charge": charge["id"], "doc_url": "https://docs.stripe.com/error-codes/"
             + code.replace("_", "-"), "payment_method": shown}
    if decline_code:
        error["decline_code"] = decline_code
    pi.update(status="requires_payment_method", latest_charge=charge["id"],
              next_action=None, payment_method=None, last_payment_error=error)
    emu.emit("charge.failed", charge, account=account)
    emu.emit("payment_intent.payment_failed", pi, account=account)
    if pi.get("_invoice"):
        from .invoices import payment_failed
        payment_failed(emu, pi)
    return StripeError(message, type="card_error", code=code, status=402,
                       decline_code=decline_code, headers={"Stripe-Should-Retry": "false"},
                       extra={"charge": charge["id"], "payment_intent": emu.render(pi),
                              "payment_method": shown})


def succeed(emu, pi, pm):
    """The card is authorised: capture now or wait for capture. A card kept for later
    (`setup_future_usage`) is attached to the PaymentIntent's customer first."""
    account = pi["_account"]
    if pi["setup_future_usage"]:
        if pi["customer"]:
            attach_now(emu, emu.store.find(pm), pi["customer"])
        emu.set_up(pi["customer"], pm)
    used(emu, pm, kept=bool(pi["setup_future_usage"]))
    charge = card_charge(emu, pi, pm)
    pi.update(latest_charge=charge["id"], next_action=None, last_payment_error=None)
    if pi["capture_method"] == "manual":
        charge["_manual"] = True
        pi.update(status="requires_capture", amount_capturable=pi["amount"])
        emu.emit("charge.succeeded", charge, account=account)
        emu.emit("payment_intent.amount_capturable_updated", pi, account=account)
        return
    capture(emu, charge, pi["amount"], synchronous=pi["capture_method"] == "automatic")
    pi.update(status="succeeded", amount_received=pi["amount"])
    emu.emit("payment_intent.succeeded", pi, account=account)
    if pi.get("_invoice"):
        from .invoices import payment_succeeded
        payment_succeeded(emu, pi)


def authenticated(emu, pi):
    """The customer completed 3-D Secure: the attempt goes on as the card then behaves (a
    decline after authentication answers nobody: the PaymentIntent and its events say it)."""
    info = card_of(emu, pi["payment_method"])
    if info.after != "succeed":
        failed_attempt(emu, pi, pi["payment_method"], info.after)
        return
    succeed(emu, pi, pi["payment_method"])


def authentication_failed(emu, pi):
    """3-D Secure failed: back to requires_payment_method."""
    pm = pi["payment_method"]
    used(emu, pm)
    pi.update(status="requires_payment_method", next_action=None, payment_method=None,
              last_payment_error={
                  "type": "invalid_request_error",
                  "code": "payment_intent_authentication_failure",
                  "doc_url": "https://docs.stripe.com/error-codes/"
                             "payment-intent-authentication-failure",
                  "message": "The provided PaymentMethod has failed authentication. You can "
                             "provide payment_method_data or a new PaymentMethod to attempt "
                             "to fulfill this PaymentIntent again.",
                  "payment_method": emu.render(emu.store.find(pm))})
    emu.emit("payment_intent.payment_failed", pi, account=pi["_account"])
    if pi.get("_invoice"):
        from .invoices import payment_failed
        payment_failed(emu, pi)


@route("POST", "/v1/payment_intents/<pid>/confirm")
def confirm_payment_intent(ctx):
    """POST /v1/payment_intents/{id}/confirm: a new attempt (3-D Secure is never skipped)."""
    p = ctx.params.check(*CONFIRM_PARAMS)
    pi = _get(ctx)
    if pi["status"] not in CONFIRMABLE:
        raise _unexpected(ctx, pi, "confirmation")
    pm = _payment_method(ctx, p) or \
        (pi["payment_method"] and ctx.emu.store.find(pi["payment_method"]))
    if not pm:
        raise StripeError("You cannot confirm this PaymentIntent because it's missing a "
                          "payment method.", code="payment_intent_unexpected_state",
                          param="payment_method", extra={"payment_intent": show(ctx, pi)})
    attempt(ctx, pi, pm, p)
    return show(ctx, pi)


@route("POST", "/v1/payment_intents/<pid>/capture")
def capture_payment_intent(ctx):
    """POST /v1/payment_intents/{id}/capture (partial captures release the rest)."""
    p = ctx.params.check("amount_to_capture", "application_fee_amount", "metadata",
                         "statement_descriptor", "statement_descriptor_suffix",
                         "transfer_data", "final_capture")
    emu = ctx.emu
    pi = _get(ctx)
    if pi["status"] != "requires_capture":
        raise _unexpected(ctx, pi, "capture")
    amount = p.int("amount_to_capture", pi["amount_capturable"], minimum=1)
    if amount > pi["amount_capturable"]:
        raise invalid("The amount to capture cannot exceed the capturable amount.",
                      "amount_to_capture")
    charge = emu.store.find(pi["latest_charge"])
    if p.has("application_fee_amount"):
        fee = p.int("application_fee_amount", minimum=0)
        pi["application_fee_amount"] = charge["application_fee_amount"] = fee
    if p.has("transfer_data"):
        td = p.sub("transfer_data")
        if td.has("amount") and charge["transfer_data"]:
            charge["transfer_data"]["amount"] = pi["transfer_data"]["amount"] = \
                td.int("amount", minimum=0)
    apply_metadata(pi, p)
    capture(emu, charge, amount)  # caps the fee at the captured amount
    if pi["application_fee_amount"] is not None:
        pi["application_fee_amount"] = charge["application_fee_amount"]
    pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
    emu.emit("payment_intent.succeeded", pi, account=ctx.account)
    return show(ctx, pi)


@route("POST", "/v1/payment_intents/<pid>/cancel")
def cancel_payment_intent(ctx):
    """POST /v1/payment_intents/{id}/cancel."""
    p = ctx.params.check("cancellation_reason")
    emu = ctx.emu
    pi = _get(ctx)
    if pi["status"] not in CANCELABLE:
        raise _unexpected(ctx, pi, "cancellation")
    if pi.get("_checkout_session") and pi["status"] != "requires_capture":
        raise StripeError("You cannot cancel this PaymentIntent because it was created by a "
                          "Checkout Session. Expire the Checkout Session instead.", saved=False)
    if pi.get("_invoice"):
        raise StripeError("You cannot cancel this PaymentIntent because it was created by an "
                          "invoice; cancel its subscription instead.",
                          saved=False)
    if pi["status"] == "requires_capture":
        charge = emu.store.find(pi["latest_charge"])
        charge.update(amount_refunded=charge["amount"], refunded=True)
        emu.emit("charge.refunded", charge, account=ctx.account)
    pi.update(status="canceled", canceled_at=emu.now(), amount_capturable=0,
              next_action=None,
              cancellation_reason=p.str("cancellation_reason", choices=(
                  "duplicate", "fraudulent", "requested_by_customer", "abandoned")))
    emu.emit("payment_intent.canceled", pi, account=ctx.account)
    return show(ctx, pi)


@route("GET", "/v1/payment_intents/search")
def search_payment_intents(ctx):
    """GET /v1/payment_intents/search?query=... (Stripe's search query language)."""
    return search_response(ctx, "payment_intent", "/v1/payment_intents/search",
                           ("amount", "created", "currency", "customer", "metadata",
                            "status"))


@route("GET", "/v1/payment_intents/<pid>")
def retrieve_payment_intent(ctx):
    """GET /v1/payment_intents/{id}."""
    ctx.params.check("client_secret")
    return show(ctx, _get(ctx))


@route("POST", "/v1/payment_intents/<pid>")
def update_payment_intent(ctx):
    """POST /v1/payment_intents/{id}."""
    p = ctx.params.check(*UPDATE_PARAMS)
    pi = _get(ctx)
    money_keys = ("amount", "currency", "transfer_data", "application_fee_amount",
                  "payment_method", "capture_method")
    if pi["status"] not in CONFIRMABLE and any(p.has(k) for k in money_keys):
        raise _unexpected(ctx, pi, "update")
    if pi.get("_invoice"):
        for key in ("amount", "currency", "transfer_data", "application_fee_amount",
                    "customer", "capture_method"):
            if p.has(key):
                raise invalid("You cannot update `%s` on a PaymentIntent created by an "
                              "invoice: change the invoice or its subscription instead."
                              % key, key)
    amount, cur, fee, transfer_data = money_terms(ctx, p, pi)
    changes = {"amount": amount, "currency": cur, "application_fee_amount": fee,
               "transfer_data": transfer_data}
    if p.has("customer"):
        changes["customer"] = _customer(ctx, p)
    if p.has("payment_method"):
        pm = _payment_method(ctx, p)
        changes["payment_method"] = pm and pm["id"]
        if pi["status"] == "requires_payment_method":
            changes["status"] = "requires_confirmation"
    for key in ("description", "receipt_email", "transfer_group", "statement_descriptor",
                "statement_descriptor_suffix", "setup_future_usage"):
        if p.has(key):
            changes[key] = p.str(key)
    if p.has("capture_method"):
        changes["capture_method"] = p.str("capture_method", choices=CAPTURE_METHODS)
    pi.update(changes)
    apply_metadata(pi, p)
    return show(ctx, pi)


@route("GET", "/v1/payment_intents")
def list_payment_intents(ctx):
    """GET /v1/payment_intents."""
    customer = ctx.params.str("customer")
    return list_response(ctx, "payment_intent", "/v1/payment_intents",
                         lambda pi: customer is None or pi["customer"] == customer,
                         extra=("customer",))
