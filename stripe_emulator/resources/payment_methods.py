"""PaymentMethods: the test cards made into PaymentMethods, attach, detach, retrieve, list.

A test id (`pm_card_visa`, ...) is not a PaymentMethod of its own: each time one is used
(attached, confirmed, retrieved) Stripe makes a new PaymentMethod of that card, with its
own `pm_...` id, and that is the id every object then names. A PaymentMethod is attached
to at most one customer. One used for a payment or a setup without being attached to a
customer (nor kept for later by `setup_future_usage`), or detached from its customer, may
not be used again.
"""
from ..errors import StripeError, not_found
from ..routes import route
from ..store import paginate
from .cards import CARDS, decline_message, payment_method
from .common import show
from .customers import find as find_customer

PREVIOUSLY_USED = (
    "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
    "attachment, shared with a connected account without Customer attachment, or was "
    "detached from a Customer. It may not be used again. To use a PaymentMethod multiple "
    "times, you must attach it to a Customer first.")
# Of the declining test cards only this one attaches (and declines when charged).
ATTACHABLE_DECLINE = "pm_card_chargeCustomerFail"


def new_payment_method(emu, account, test_id):
    """A new PaymentMethod of a test card, owned by `account`."""
    pm = payment_method(emu, test_id)
    pm.update(id=emu.new_id("pm"), _card=test_id, _given=test_id, _spent=False)
    return emu.store.add("payment_method", account, pm)


def resolve(emu, account, pm_id, param="payment_method"):
    """The PaymentMethod a parameter names: a new one for a test id, else the account's own;
    otherwise Stripe's 400."""
    if pm_id in CARDS:
        return new_payment_method(emu, account, pm_id)
    pm = emu.store.find(pm_id) if isinstance(pm_id, str) else None
    if pm is None or pm["_kind"] != "payment_method" or pm["_account"] != account:
        raise StripeError("No such PaymentMethod: '%s'" % pm_id, code="resource_missing",
                          param=param)
    return pm


def card_of(emu, pm_id):
    """The test card (`cards.Card`) behind a stored PaymentMethod id."""
    return CARDS[emu.store.find(pm_id)["_card"]]


def check_usable(pm):
    """400 for a PaymentMethod that may not be used again."""
    if pm["_spent"]:
        raise StripeError(PREVIOUSLY_USED, param="payment_method")


def used(emu, pm_id, kept=False):
    """A payment or setup used the PaymentMethod: unless attached to a customer or `kept`
    for later (setup_future_usage), it may not be used again."""
    pm = emu.store.find(pm_id)
    if pm["customer"] is None and not kept:
        pm["_spent"] = True


def refuses_setup(pm):
    """Whether the card declines being saved (attached or set up): every declining test
    card but the one that declines only when charged."""
    return CARDS[pm["_card"]].behaviour == "decline" and pm["_card"] != ATTACHABLE_DECLINE


def check_attachable(emu, pm, customer_id):
    """Stripe's refusals of attaching `pm` to a customer (None: one being made); True when
    it is attached to that customer already."""
    check_usable(pm)
    if customer_id is not None and pm["customer"] == customer_id:
        return True
    if pm["customer"] is not None:
        raise StripeError("The payment method you provided has already been attached to a "
                          "customer.", param="payment_method")
    if refuses_setup(pm):
        info = CARDS[pm["_card"]]
        raise StripeError(decline_message(info), type="card_error", code=info.code,
                          decline_code=info.decline_code, status=402,
                          headers={"Stripe-Should-Retry": "false"},
                          extra={"payment_method": emu.render(pm)})
    return False


def attach(emu, pm, customer):
    """Attach `pm` to `customer` (checked first) and announce it."""
    if not check_attachable(emu, pm, customer["id"]):
        attach_now(emu, pm, customer["id"])
    return pm


def attach_now(emu, pm, customer_id):
    """Attach a PaymentMethod (checked, or just used by a payment or a setup of that
    customer) and announce it."""
    if pm["customer"] != customer_id:
        pm["customer"] = customer_id
        emu.emit("payment_method.attached", pm, account=pm["_account"])
    return pm


def _path(ctx, test_ids=True):
    """The PaymentMethod of the path (a new one for a test id), else 404."""
    pm_id = ctx.args["pmid"]
    if test_ids and pm_id in CARDS:
        return new_payment_method(ctx.emu, ctx.account, pm_id)
    pm = ctx.emu.store.find(pm_id)
    if pm is None or pm["_kind"] != "payment_method" or pm["_account"] != ctx.account:
        raise StripeError("No such PaymentMethod: '%s'" % pm_id, code="resource_missing",
                          param="payment_method", status=404)
    return pm


@route("GET", "/v1/payment_methods/<pmid>")
def retrieve_payment_method(ctx):
    """GET /v1/payment_methods/{id} (a test id answers a new PaymentMethod of its card)."""
    return show(ctx, _path(ctx))


@route("POST", "/v1/payment_methods/<pmid>/attach")
def attach_payment_method(ctx):
    """POST /v1/payment_methods/{id}/attach {customer}: `payment_method.attached`; attached
    to the same customer already, nothing changes."""
    p = ctx.params.check("customer")
    if not p.has("customer"):
        raise StripeError("Must provide customer or customer_account.",
                          code="parameter_missing", saved=False)
    customer = find_customer(ctx.emu, ctx.account, p.str("customer"))
    return show(ctx, attach(ctx.emu, _path(ctx), customer))


@route("POST", "/v1/payment_methods/<pmid>/detach")
def detach_payment_method(ctx):
    """POST /v1/payment_methods/{id}/detach: `payment_method.detached`; the customer's
    default, when it was this one, is cleared (`customer.updated`)."""
    ctx.params.check()
    emu = ctx.emu
    pm = _path(ctx, test_ids=False)
    cid = pm["customer"]
    if cid is None:
        raise StripeError("The payment method you provided is not attached to a customer so "
                          "detachment is impossible.")
    pm.update(customer=None, _spent=True)
    emu.emit("payment_method.detached", pm, account=ctx.account, previous={"customer": cid})
    customer = emu.store.find(cid)
    settings = customer["invoice_settings"]
    if settings["default_payment_method"] == pm["id"]:
        settings["default_payment_method"] = None
        emu.emit("customer.updated", customer, account=ctx.account,
                 previous={"invoice_settings": {"default_payment_method": pm["id"]}})
    return show(ctx, pm)


def _attached(ctx, customer_id, url):
    """A page of the customer's PaymentMethods (`type`: only `card` ones exist here)."""
    p = ctx.params.check("limit", "starting_after", "ending_before", "type",
                         "allow_redisplay", "customer")
    kind, redisplay = p.str("type"), p.str("allow_redisplay")
    items = [pm for pm in ctx.emu.store.all("payment_method", ctx.account)
             if customer_id is not None and pm["customer"] == customer_id
             and kind in (None, pm["type"]) and redisplay in (None, pm["allow_redisplay"])]
    return paginate(items, p, url, ctx.emu.render)


@route("GET", "/v1/payment_methods")
def list_payment_methods(ctx):
    """GET /v1/payment_methods?customer=: the customer's PaymentMethods (without `customer`,
    Stripe lists Treasury PaymentMethods: none here)."""
    cid = ctx.params.str("customer")
    if cid is not None:
        find_customer(ctx.emu, ctx.account, cid)
    return _attached(ctx, cid, "/v1/payment_methods")


def _customer(ctx):
    customer = ctx.emu.store.find(ctx.args["cid"])
    if customer is None or customer["_kind"] != "customer" or \
            customer["_account"] != ctx.account or customer.get("deleted"):
        raise not_found("customer", ctx.args["cid"])
    return customer


@route("GET", "/v1/customers/<cid>/payment_methods")
def list_customer_payment_methods(ctx):
    """GET /v1/customers/{id}/payment_methods."""
    customer = _customer(ctx)
    return _attached(ctx, customer["id"],
                     "/v1/customers/%s/payment_methods" % customer["id"])


@route("GET", "/v1/customers/<cid>/payment_methods/<pmid>")
def retrieve_customer_payment_method(ctx):
    """GET /v1/customers/{id}/payment_methods/{pm}: one attached to that customer."""
    customer = _customer(ctx)
    pm = _path(ctx, test_ids=False)
    if pm["customer"] != customer["id"]:
        raise not_found("PaymentMethod", pm["id"], "payment_method")
    return show(ctx, pm)
