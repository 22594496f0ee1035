"""Customers: create (optionally attaching a PaymentMethod), retrieve, update, list, delete.

`invoice_settings[default_payment_method]` must name a PaymentMethod attached to the
customer (a test id given as `payment_method` in the same request names the one attached
there, as in Stripe's examples). A deleted customer is retrieved as `{id, object, deleted}`,
is left out of lists and can no longer be updated or used.
"""
import random
import re

from ..errors import StripeError, invalid, not_found
from ..routes import route
from .common import apply_metadata, list_response, show

CREATE_PARAMS = ("email", "name", "description", "phone", "metadata", "payment_method",
                 "invoice_settings")
UPDATE_PARAMS = ("email", "name", "description", "phone", "metadata", "invoice_settings")
# what the customer shows of invoice_settings that a request may change
INVOICE_SETTINGS = ("default_payment_method",)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def find(emu, account, cid, param="customer"):
    """The account's customer a parameter names (not deleted), else Stripe's 400."""
    customer = emu.store.find(cid) if isinstance(cid, str) else None
    if customer is None or customer["_kind"] != "customer" or customer["_account"] != account \
            or customer.get("deleted"):
        raise StripeError("No such customer: '%s'" % cid, code="resource_missing", param=param)
    return customer


def _get(ctx):
    """The customer of the path (deleted ones too), else 404."""
    customer = ctx.emu.store.find(ctx.args["cid"])
    if customer is None or customer["_kind"] != "customer" or \
            customer["_account"] != ctx.account:
        raise not_found("customer", ctx.args["cid"])
    return customer


def _live(ctx):
    customer = _get(ctx)
    if customer.get("deleted"):
        raise not_found("customer", customer["id"])
    return customer


def _email(p):
    email = p.str("email")
    if email and not _EMAIL.match(email):
        raise invalid("Invalid email address: %s" % email, "email", code="email_invalid")
    return email


def _invoice_settings(p):
    """The invoice_settings parameter, refusing the parts the emulator does not model."""
    settings = p.sub("invoice_settings")
    for key in settings.data:
        if key not in INVOICE_SETTINGS:
            raise StripeError("The Stripe emulator does not support the parameter "
                              "invoice_settings[%s] on this endpoint (Stripe does)." % key,
                              code="emulator_unsupported_parameter",
                              param="invoice_settings[%s]" % key, saved=False)
    return settings


def _not_attached(pm_id):
    return StripeError("The customer does not have a payment method with the ID %s. The "
                       "payment method must be attached to the customer." % pm_id,
                       param="invoice_settings[default_payment_method]")


def set_default(emu, customer, pm_id):
    """Make `pm_id` ("" for none) the customer's default; it must be attached to it."""
    if pm_id:
        pm = emu.store.find(pm_id)
        if pm is None or pm["_kind"] != "payment_method" or pm["customer"] != customer["id"]:
            raise _not_attached(pm_id)
    customer["invoice_settings"]["default_payment_method"] = pm_id or None


def _new_default(settings, pm):
    """The default a new customer is given: only the PaymentMethod attached to it by the
    same request can be (named by its id, or by the test id it was made of)."""
    if not settings.has("default_payment_method"):
        return None
    wanted = settings.str("default_payment_method")
    if not wanted:
        return None
    if pm is None or wanted not in (pm["id"], pm["_given"]):
        raise _not_attached(wanted)
    return pm["id"]


@route("POST", "/v1/customers")
def create_customer(ctx):
    """POST /v1/customers (`payment_method`: attached to the new customer)."""
    from .payment_methods import attach_now, check_attachable, resolve
    p = ctx.params.check(*CREATE_PARAMS)
    emu = ctx.emu
    settings = _invoice_settings(p)
    pm = None
    if p.has("payment_method"):
        pm = resolve(emu, ctx.account, p.str("payment_method"))
        check_attachable(emu, pm, None)
    default = _new_default(settings, pm)
    customer = {
        "id": emu.new_id("cus"), "object": "customer", "address": None, "balance": 0,
        "created": emu.now(), "currency": None, "default_source": None, "delinquent": False,
        "description": p.str("description"), "discount": None, "email": _email(p),
        "invoice_prefix": "%08X" % random.getrandbits(32),
        "invoice_settings": {"custom_fields": None, "default_payment_method": default,
                             "footer": None, "rendering_options": None},
        "livemode": False, "metadata": {}, "name": p.str("name"),
        "next_invoice_sequence": 1, "phone": p.str("phone"), "preferred_locales": [],
        "shipping": None, "tax_exempt": "none", "test_clock": None,
    }
    apply_metadata(customer, p)
    emu.store.add("customer", ctx.account, customer)
    emu.emit("customer.created", customer, account=ctx.account)
    if pm is not None:
        attach_now(emu, pm, customer["id"])
    return show(ctx, customer)


@route("GET", "/v1/customers/<cid>")
def retrieve_customer(ctx):
    """GET /v1/customers/{id} (a deleted customer answers `deleted: true`)."""
    customer = _get(ctx)
    if customer.get("deleted"):
        return {"id": customer["id"], "object": "customer", "deleted": True}
    return show(ctx, customer)


@route("POST", "/v1/customers/<cid>")
def update_customer(ctx):
    """POST /v1/customers/{id}: email, name, description, phone, metadata, the default
    PaymentMethod; `customer.updated` with what changed."""
    p = ctx.params.check(*UPDATE_PARAMS)
    customer = _live(ctx)
    settings = _invoice_settings(p)
    previous = {}
    before_meta = apply_metadata(customer, p)
    if before_meta is not None:
        previous["metadata"] = before_meta
    for key in ("email", "name", "description", "phone"):
        value = (_email(p) if key == "email" else p.str(key)) or None
        if p.has(key) and value != customer[key]:
            previous[key] = customer[key]
            customer[key] = value
    if settings.has("default_payment_method"):
        before = customer["invoice_settings"]["default_payment_method"]
        set_default(ctx.emu, customer, settings.str("default_payment_method"))
        if customer["invoice_settings"]["default_payment_method"] != before:
            previous["invoice_settings"] = {"default_payment_method": before}
    if previous:
        ctx.emu.emit("customer.updated", customer, account=ctx.account, previous=previous)
    return show(ctx, customer)


@route("GET", "/v1/customers")
def list_customers(ctx):
    """GET /v1/customers (`email`: exact, case-sensitive, as Stripe filters)."""
    email = ctx.params.str("email")
    return list_response(ctx, "customer", "/v1/customers",
                         lambda c: not c.get("deleted") and (email is None
                                                              or c["email"] == email),
                         extra=("email",))


@route("DELETE", "/v1/customers/<cid>")
def delete_customer(ctx):
    """DELETE /v1/customers/{id}: its subscriptions canceled at once
    (`customer.subscription.deleted`), `customer.deleted`; the customer can no longer be
    used."""
    from .subscriptions import customer_deleted
    customer = _live(ctx)
    customer_deleted(ctx.emu, customer)
    ctx.emu.emit("customer.deleted", customer, account=ctx.account)
    customer["deleted"] = True
    return {"id": customer["id"], "object": "customer", "deleted": True}
