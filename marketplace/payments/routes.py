"""/api/orders/{id}/payment-intent, /confirm, /refunds and /api/payments."""
from flask import Response

from marketplace.auth.guard import current_user
from marketplace.idempotency import idempotent
from marketplace.openapi import Blueprint
from marketplace.ratelimit import configured, limiter
from marketplace.pagination import list_schema
from marketplace.payments import checkout, receipts, refunds, service
from marketplace.payments.schemas import (
    CheckoutSessionSchema,
    ConfirmResultSchema,
    ConfirmSchema,
    PaymentIntentSchema,
    PaymentListArgsSchema,
    PaymentDetailSchema,
    PaymentSchema,
    ReceiptArgsSchema,
    ReceiptSchema,
    RefundCreateSchema,
    RefundSchema,
)

# The receipt's 200 in either form (flask-smorest documents one content type per status).
RECEIPT_RESPONSE = {
    "description": "The receipt: JSON, or a PDF with `?format=pdf`",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}}},
}

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
    """Confirm the payment with a saved card, a one-off one, or the default saved card;
    succeeded marks the order paid, requires_action gives next_action."""
    return service.confirm(current_user(), order_id, body.get("payment_method"), body["save_payment_method"])


@blp.route("/orders/<order_id>/checkout-session", methods=["POST"])
@limiter.limit(configured("RATELIMIT_CHECKOUT"))
@blp.auth("shopper")
@idempotent
@blp.response(201, CheckoutSessionSchema)
@blp.alt_response(200, schema=CheckoutSessionSchema, description="The order's open Checkout Session")
@blp.errors(404, 409, 429, 502, 503)
def create_checkout_session(order_id):
    """Pay on Stripe's hosted Checkout page: 201 when the session is made, 200 while it is open."""
    session, created = checkout.open_session(current_user(), order_id)
    return session, 201 if created else 200


@blp.route("/orders/<order_id>/receipt")
@blp.auth("shopper", "admin")
@blp.arguments(ReceiptArgsSchema, location="query")
@blp.response(200, ReceiptSchema)
@blp.doc(responses={"200": RECEIPT_RESPONSE})
@blp.errors(404, 409)
def get_receipt(args, order_id):
    """The paid order's receipt: JSON, or `?format=pdf` (application/pdf)."""
    data = receipts.receipt(current_user(), order_id)
    if args["format"] == "pdf":
        return Response(receipts.receipt_pdf(data), mimetype="application/pdf", headers={
            "Content-Disposition": f'inline; filename="receipt-{order_id}.pdf"'})
    return data


@blp.route("/payments/<payment_id>")
@blp.auth("shopper", "admin")
@blp.response(200, PaymentDetailSchema)
@blp.errors(404)
def get_payment(payment_id):
    """One payment: amounts, status, card, refunds, Stripe's receipt page."""
    return receipts.payment_detail(current_user(), payment_id)


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
