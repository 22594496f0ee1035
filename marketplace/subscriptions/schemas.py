"""Bodies of /api/subscriptions and /api/vendors/me/subscriptions."""
from marshmallow import Schema, fields, validate

from marketplace.database import isoformat
from marketplace.openapi import StrictBoolean
from marketplace.pagination import PaginationSchema

API_STATUSES = ("incomplete", "active", "past_due", "canceled")


class SubscribeSchema(Schema):
    product_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    payment_method = fields.String(validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,252}$"),
                                   metadata={"description": "a saved card, or a one-off one (saved first); "
                                                            "omitted: the default saved card"})


class CancelSchema(Schema):
    at_period_end = StrictBoolean(required=True)


class FeePolicyOutSchema(Schema):
    percent_bps = fields.Integer(required=True)
    fixed = fields.Integer(required=True)


class LatestInvoiceSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(allow_none=True)
    amount_paid = fields.Integer(allow_none=True)
    order_id = fields.String(allow_none=True, metadata={"description": "the order booking it, once paid "
                                                                       "(refund it there)"})


class SubscriptionSchema(Schema):
    id = fields.String(required=True)
    product_id = fields.String(required=True)
    vendor_id = fields.String(required=True)
    shopper_id = fields.String(required=True)
    status = fields.Method("_status", metadata={"enum": list(API_STATUSES)})
    current_period_end = fields.Method("_period_end", allow_none=True)
    cancel_at_period_end = fields.Boolean(required=True)
    price = fields.Integer(required=True)
    currency = fields.String(required=True)
    interval = fields.String(required=True)
    interval_count = fields.Integer(required=True)
    fee_policy = fields.Method("_fee_policy")
    latest_invoice = fields.Method("_latest_invoice", allow_none=True)
    next_action = fields.Dict(allow_none=True, dump_default=None)
    created_at = fields.Method("_created_at")

    def _status(self, obj):
        return {"creating": "incomplete", "incomplete_expired": "canceled", "unpaid": "past_due"}.get(
            obj.status, obj.status)

    def _period_end(self, obj):
        return isoformat(obj.current_period_end)

    def _fee_policy(self, obj):
        return {"percent_bps": obj.fee_percent_bps, "fixed": obj.fee_fixed}

    def _latest_invoice(self, obj):
        from marketplace.subscriptions.service import invoice_order_of

        if obj.latest_invoice_id is None:
            return None
        return {"id": obj.latest_invoice_id, "status": obj.latest_invoice_status,
                "amount_paid": obj.latest_invoice_amount_paid, "order_id": invoice_order_of(obj)}

    def _created_at(self, obj):
        return isoformat(obj.created_at)


class MrrSchema(Schema):
    currency = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "minor units a month"})


class VendorSummarySchema(Schema):
    active = fields.Integer(required=True)
    mrr = fields.List(fields.Nested(MrrSchema), required=True)


class SubscriptionListSchema(Schema):
    data = fields.List(fields.Nested(SubscriptionSchema), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)


class VendorSubscriptionSchema(SubscriptionSchema):
    """A subscriber as its vendor sees it: no shopper id, no order of the platform's."""

    class Meta:
        exclude = ("shopper_id",)

    def _latest_invoice(self, obj):
        latest = super()._latest_invoice(obj)
        return latest and {k: v for k, v in latest.items() if k != "order_id"}


class VendorSubscriptionListSchema(Schema):
    data = fields.List(fields.Nested(VendorSubscriptionSchema), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)
    summary = fields.Nested(VendorSummarySchema, required=True)
