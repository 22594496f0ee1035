"""Request and response bodies of the payment, confirmation and refund endpoints."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from marketplace.database import isoformat
from marketplace.openapi import Timestamp
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
    payment_method = fields.String(required=True, validate=validate.Length(min=1, max=255))


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


class PaymentListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.Length(max=32))
    from_ = Timestamp(data_key="from")
    to = Timestamp()
