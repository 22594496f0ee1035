"""/api/payment-methods: the shopper's saved cards."""
from marketplace.auth.guard import current_user
from marketplace.openapi import Blueprint
from marketplace.wallets import service
from marketplace.wallets.schemas import (
    PaymentMethodListSchema,
    PaymentMethodSchema,
    SavePaymentMethodSchema,
    SetupIntentSchema,
)

blp = Blueprint("wallets", __name__, url_prefix="/api/payment-methods", description="Saved payment methods")


@blp.route("/setup-intent", methods=["POST"])
@blp.auth("shopper")
@blp.response(201, SetupIntentSchema)
@blp.errors(429, 502, 503)
def create_setup_intent():
    """A SetupIntent saving a card for later; the shopper's Customer is made on first need."""
    return service.create_setup_intent(current_user())


@blp.route("", methods=["POST"])
@blp.auth("shopper")
@blp.arguments(SavePaymentMethodSchema)
@blp.response(201, PaymentMethodSchema)
@blp.errors(404, 422, 429, 502, 503)
def save_payment_method(body):
    """Attach a PaymentMethod (a confirmed SetupIntent's, or a test one) to the shopper."""
    return service.save(current_user(), body["payment_method"])


@blp.route("", methods=["GET"])
@blp.auth("shopper")
@blp.response(200, PaymentMethodListSchema)
def list_payment_methods():
    """The shopper's saved cards (brand, last4, expiry, default)."""
    return service.list_saved(current_user())


@blp.route("/<payment_method_id>", methods=["DELETE"])
@blp.auth("shopper")
@blp.response(204)
@blp.errors(404, 429, 502, 503)
def remove_payment_method(payment_method_id):
    """Detach a saved card; the default is cleared when it was this one."""
    service.remove(current_user(), payment_method_id)


@blp.route("/<payment_method_id>/default", methods=["PUT"])
@blp.auth("shopper")
@blp.response(200, PaymentMethodSchema)
@blp.errors(404, 429, 502, 503)
def set_default_payment_method(payment_method_id):
    """Make a saved card the one used when a confirmation names none."""
    return service.set_default(current_user(), payment_method_id)
