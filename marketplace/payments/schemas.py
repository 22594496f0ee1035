"""Request and response bodies of the payment, confirmation and refund endpoints."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from marketplace.database import isoformat
from marketplace.openapi import StrictBoolean, Timestamp
from marketplace.payments.models import REFUND_REASONS
from marketplace.pagination import PageArgsSchema


class PaymentIntentSchema(Schema):
    payment_intent_id = fields.String(required=True)
    client_secret = fields.String(required=True)
    status = fields.String(required=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    charge_type = fields.String(required=True, metadata={"enum": ["destination", "separate_transfers"]})


class ConfirmSchema(Schema):
    # A saved card of the shopper's, a one-off (test) one, or none: the default saved card.
    payment_method = fields.String(validate=validate.Length(min=1, max=255))
    save_payment_method = StrictBoolean(load_default=False)


class CheckoutSessionSchema(Schema):
    checkout_session_id = fields.String(required=True, attribute="stripe_session_id")
    url = fields.String(required=True)
    expires_at = fields.Function(lambda s: isoformat(s.expires_at), required=True,
                                 metadata={"type": "string", "format": "date-time"})


class ConfirmResultSchema(Schema):
    status = fields.String(required=True)
    next_action = fields.Dict(required=True, allow_none=True)
    payment_intent_id = fields.String(required=True)
    order_status = fields.String(required=True)


class RefundItemSchema(Schema):
    order_item_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))


class RefundCreateSchema(Schema):
    items = fields.List(fields.Nested(RefundItemSchema), validate=validate.Length(min=1, max=100))
    amount = fields.Integer(strict=True, validate=validate.Range(min=1, max=99_999_999))
    reason = fields.String(required=True, validate=validate.OneOf(REFUND_REASONS))

    @validates_schema
    def _items_or_amount(self, data, **kwargs):
        if "items" in data and "amount" in data:
            raise ValidationError("Give items or an amount, not both.", "amount")


class RefundAllocationSchema(Schema):
    vendor_id = fields.String(required=True)
    amount = fields.Integer(required=True)
    platform_fee_refunded = fields.Integer(required=True)
    stripe_transfer_reversal_id = fields.String(required=True, allow_none=True)


class RefundSchema(Schema):
    id = fields.String(required=True)
    order_id = fields.String(required=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    reason = fields.String(required=True)
    status = fields.String(required=True)
    stripe_refund_id = fields.String(required=True, allow_none=True)
    allocations = fields.List(fields.Nested(RefundAllocationSchema), required=True)
    items = fields.List(fields.Dict())
    created_at = fields.Function(lambda r: isoformat(r.created_at), metadata={"type": "string", "format": "date-time"})


class PaymentSchema(Schema):
    id = fields.String(required=True)
    order_id = fields.String(required=True)
    payment_intent_id = fields.String(required=True)
    status = fields.String(required=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    charge_type = fields.String(required=True)
    stripe_charge_id = fields.String(required=True, allow_none=True)
    stripe_fee = fields.Integer(allow_none=True)
    created_at = fields.Function(lambda p: isoformat(p.created_at), metadata={"type": "string", "format": "date-time"})


class CardSchema(Schema):
    brand = fields.String(required=True, allow_none=True)
    last4 = fields.String(required=True, allow_none=True)


class PaymentDetailSchema(PaymentSchema):
    """One payment in full: the card that paid, its refunds, Stripe's receipt (a dict whose
    timestamps are already ISO strings)."""

    application_fee_amount = fields.Integer(allow_none=True)
    refunded = fields.Integer(required=True)
    card = fields.Nested(CardSchema, required=True, allow_none=True)
    refunds = fields.List(fields.Nested(RefundSchema), required=True)
    receipt_url = fields.String(required=True, allow_none=True)
    checkout_session_id = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    succeeded_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})


class ReceiptItemSchema(Schema):
    name = fields.String(required=True)
    vendor_id = fields.String(required=True)
    unit_price = fields.Integer(required=True)
    quantity = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class ReceiptRefundSchema(Schema):
    amount = fields.Integer(required=True)
    created_at = fields.String(required=True)


class ReceiptSchema(Schema):
    order_id = fields.String(required=True)
    paid_at = fields.String(required=True, allow_none=True)
    currency = fields.String(required=True)
    items = fields.List(fields.Nested(ReceiptItemSchema), required=True)
    subtotal = fields.Integer(required=True)
    total = fields.Integer(required=True)
    card = fields.Nested(CardSchema, required=True, allow_none=True)
    refunds = fields.List(fields.Nested(ReceiptRefundSchema), required=True)
    net_paid = fields.Integer(required=True)
    receipt_url = fields.String(allow_none=True)


class ReceiptArgsSchema(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "pdf")))


class PaymentListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.Length(max=32))
    from_ = Timestamp(data_key="from")
    to = Timestamp()
