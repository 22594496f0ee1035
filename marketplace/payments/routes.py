"""/api/orders/{id}/payment-intent, /confirm, /refunds and /api/payments."""
from marketplace.auth.guard import current_user
from marketplace.idempotency import idempotent
from marketplace.openapi import Blueprint
from marketplace.ratelimit import configured, limiter
from marketplace.pagination import list_schema
from marketplace.payments import refunds, service
from marketplace.payments.schemas import (
    ConfirmResultSchema,
    ConfirmSchema,
    PaymentIntentSchema,
    PaymentListArgsSchema,
    PaymentSchema,
    RefundCreateSchema,
    RefundSchema,
)

blp = Blueprint("payments", __name__, url_prefix="/api", description="Payments and refunds")


@blp.route("/orders/<order_id>/payment-intent", methods=["POST"])
@limiter.limit(configured("RATELIMIT_CHECKOUT"))
@blp.auth("shopper")
@idempotent
@blp.response(201, PaymentIntentSchema)
@blp.alt_response(200, schema=PaymentIntentSchema, description="The order's existing PaymentIntent")
@blp.errors(404, 409, 429, 502, 503)
def create_payment_intent(order_id):
    """The order's one PaymentIntent: 201 when made now, 200 with the same one afterwards."""
    payment, created = service.create_payment_intent(current_user(), order_id)
    return payment, 201 if created else 200


@blp.route("/orders/<order_id>/confirm", methods=["POST"])
@limiter.limit(configured("RATELIMIT_CHECKOUT"))
@blp.auth("shopper")
@idempotent
@blp.arguments(ConfirmSchema)
@blp.response(200, ConfirmResultSchema)
@blp.errors(402, 404, 409, 422, 429, 502, 503)
def confirm(body, order_id):
    """Confirm the payment; succeeded marks the order paid, requires_action gives next_action."""
    return service.confirm(current_user(), order_id, body["payment_method"])


@blp.route("/orders/<order_id>/refunds", methods=["POST"])
@blp.auth("admin")
@idempotent
@blp.arguments(RefundCreateSchema)
@blp.response(201, RefundSchema)
@blp.errors(404, 409, 422, 429, 502, 503)
def create_refund(body, order_id):
    """Refund everything still refundable, an amount, or items; allocated across vendors."""
    return refunds.create_refund(current_user(), order_id, body["reason"], body.get("amount"), body.get("items"))


@blp.route("/payments")
@blp.auth("shopper")
@blp.arguments(PaymentListArgsSchema, location="query")
@blp.response(200, list_schema(PaymentSchema, "PaymentList"))
def list_payments(args):
    """The caller's payment history; filters status, from, to."""
    return service.list_payments(current_user(), **args)
