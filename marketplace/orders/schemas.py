"""Request and response bodies of /api/orders and a vendor's sales."""

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from marketplace.database import isoformat
from marketplace.openapi import Timestamp
from marketplace.orders.models import CHARGE_TYPES, STATUSES
from marketplace.pagination import PageArgsSchema

MAX_LINES = 100
MAX_QUANTITY = 1000
# Money the client might try to set: refused with a clear message, never trusted.
MONEY_FIELDS = (
    "price", "unit_price", "amount", "total", "subtotal", "platform_fee",
    "application_fee_amount",
)


def _refuse_money(data):
    if isinstance(data, dict):
        sent = [name for name in MONEY_FIELDS if name in data]
        if sent:
            message = "Prices and totals come from the catalog; do not send them."
            raise ValidationError({name: [message] for name in sent})
    return data


class OrderLineSchema(Schema):
    product_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY)
    )

    @pre_load
    def _no_money(self, data, **kwargs):
        return _refuse_money(data)


class OrderCreateSchema(Schema):
    items = fields.List(
        fields.Nested(OrderLineSchema), required=True,
        validate=validate.Length(min=1, max=MAX_LINES),
    )

    @pre_load
    def _no_money(self, data, **kwargs):
        return _refuse_money(data)

    @validates_schema
    def _merged_quantities(self, data, **kwargs):
        """Lines naming the same product are merged; the sum obeys the same bound."""
        totals: dict[str, int] = {}
        for line in data.get("items", []):
            totals[line["product_id"]] = totals.get(line["product_id"], 0) + line["quantity"]
        too_many = [pid for pid, qty in totals.items() if qty > MAX_QUANTITY]
        if too_many:
            raise ValidationError(
                f"At most {MAX_QUANTITY} of one product per order (lines are merged): "
                + ", ".join(too_many), "items",
            )


class OrderItemSchema(Schema):
    id = fields.String(required=True)
    product_id = fields.String(required=True)
    vendor_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = fields.Integer(required=True)
    quantity = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class FrozenFeePolicySchema(Schema):
    percent_bps = fields.Integer(required=True)
    fixed = fields.Integer(required=True)


class OrderSplitSchema(Schema):
    id = fields.String(required=True)
    vendor_id = fields.String(required=True)
    subtotal = fields.Integer(required=True)
    platform_fee = fields.Integer(required=True)
    vendor_net = fields.Integer(required=True)
    refunded = fields.Integer(required=True)
    status = fields.String(required=True)
    stripe_transfer_id = fields.String(required=True, allow_none=True)
    fee_policy = fields.Nested(
        FrozenFeePolicySchema,
        metadata={"description": "the policy frozen on this split when the order was made"},
    )

    def get_attribute(self, obj, attr, default):
        if attr == "fee_policy":
            return {"percent_bps": obj.percent_bps, "fixed": obj.fixed}
        return super().get_attribute(obj, attr, default)


class PaymentSummarySchema(Schema):
    payment_intent_id = fields.String(required=True)
    status = fields.String(allow_none=True)
    stripe_charge_id = fields.String(allow_none=True)


def _payment(order):
    """Null until a PaymentIntent exists; the payments work fills status and charge."""
    if order.payment_intent_id is None:
        return None
    info = getattr(order, "payment_summary", None)
    if info is not None:
        return info
    return {"payment_intent_id": order.payment_intent_id, "status": None, "stripe_charge_id": None}


class OrderSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    currency = fields.String(required=True)
    subtotal = fields.Integer(required=True)
    total = fields.Integer(required=True)
    platform_fee = fields.Integer(required=True)
    charge_type = fields.String(required=True, metadata={"enum": list(CHARGE_TYPES)})
    items = fields.List(fields.Nested(OrderItemSchema), required=True)
    splits = fields.List(fields.Nested(OrderSplitSchema), required=True)
    payment = fields.Nested(PaymentSummarySchema, required=True, allow_none=True)
    subscription_id = fields.String(allow_none=True, metadata={
        "description": "the subscription whose paid invoice this order books; null for a cart"})
    stripe_invoice_id = fields.String(allow_none=True)
    created_at = fields.Function(
        lambda o: isoformat(o.created_at), required=True, metadata={"type": "string", "format": "date-time"}
    )

    def get_attribute(self, obj, attr, default):
        if attr == "payment":
            return _payment(obj)
        return super().get_attribute(obj, attr, default)


class OrderListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    vendor_id = fields.String()
    from_ = Timestamp(data_key="from")
    to = Timestamp()


class SaleSchema(OrderSplitSchema):
    """A vendor's view of one split, with its order's state."""

    order_id = fields.String(required=True)
    currency = fields.String(required=True)
    order_status = fields.Function(lambda s: s.order.status, metadata={"type": "string"})
    created_at = fields.Function(
        lambda s: isoformat(s.created_at), metadata={"type": "string", "format": "date-time"}
    )
