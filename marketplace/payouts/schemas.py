"""Bodies of the vendor balance and payouts endpoints and of /api/admin/payout-runs."""
from marshmallow import Schema, fields, validate

from marketplace.openapi import Currency, StrictBoolean

from marketplace.database import isoformat
from marketplace.pagination import PageArgsSchema, PaginationSchema
from marketplace.payouts.models import PAYOUT_STATUSES, RUN_STATUSES

_DATE = {"type": "string", "format": "date-time"}


def _when(attr: str, **kwargs) -> fields.Function:
    return fields.Function(lambda obj: isoformat(getattr(obj, attr)), metadata=_DATE, **kwargs)


class BalanceSchema(Schema):
    currency = fields.String(required=True)
    pending = fields.Integer(required=True, metadata={"description": "sales still within PAYOUT_HOLD_DAYS"})
    available = fields.Integer(required=True, metadata={"description": "what the next payout run owes"})
    paid_out = fields.Integer(required=True)
    held = fields.Integer(required=True, metadata={
        "description": "sales kept on the platform while the vendor is suspended (paid on reinstatement)"})


class BalancesSchema(Schema):
    balances = fields.List(fields.Nested(BalanceSchema), required=True)


class PeriodSchema(Schema):
    start = fields.Function(lambda p: isoformat(p["start"]), allow_none=True, metadata=_DATE)
    end = fields.Function(lambda p: isoformat(p["end"]), metadata=_DATE)


class BreakdownSchema(Schema):
    gross_sales = fields.Integer(required=True)
    platform_fees = fields.Integer(required=True)
    refunds = fields.Integer(required=True)
    disputes = fields.Integer(required=True)
    net_amount = fields.Integer(required=True)


class PayoutSchema(Schema):
    id = fields.String(required=True)
    vendor_id = fields.String(required=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(PAYOUT_STATUSES)})
    stripe_payout_id = fields.String(allow_none=True)
    period = fields.Nested(PeriodSchema, required=True)
    breakdown = fields.Nested(BreakdownSchema, required=True)
    order_count = fields.Integer(required=True)
    created_at = _when("created_at", required=True)
    paid_at = _when("paid_at", allow_none=True)
    failure_code = fields.String(allow_none=True)


class CurrencyTotalsSchema(Schema):
    currency = fields.String(required=True)
    total_paid = fields.Integer(required=True)
    total_pending = fields.Integer(required=True)


class PayoutSummarySchema(Schema):
    total_paid = fields.Integer(required=True)
    total_pending = fields.Integer(required=True, metadata={"description": "pending and in transit"})
    next_payout_date = fields.String(required=True, metadata=_DATE)
    currency = fields.String(required=True, metadata={"description": "the currency of the two totals"})
    by_currency = fields.List(fields.Nested(CurrencyTotalsSchema), required=True)


class PayoutListSchema(Schema):
    data = fields.List(fields.Nested(PayoutSchema), required=True)
    summary = fields.Nested(PayoutSummarySchema, required=True)
    pagination = fields.Nested(PaginationSchema, required=True)


class PayoutListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(PAYOUT_STATUSES))


class PayoutRunCreateSchema(Schema):
    currency = Currency(load_default=None, allow_none=True)
    dry_run = StrictBoolean(load_default=False)


class PayoutRunSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(RUN_STATUSES)})
    dry_run = fields.Boolean(required=True)
    currency = fields.String(allow_none=True)
    started_at = _when("started_at", allow_none=True)
    finished_at = _when("finished_at", allow_none=True)
    payouts_created = fields.Integer(required=True)
    total_amount = fields.Integer(required=True, metadata={"description": "minor units, summed over the run's payouts"})
    error = fields.String(allow_none=True)
    created_at = _when("created_at", required=True)
    progress = fields.Nested(lambda: PayoutRunProgressSchema(), required=True)


class PayoutRunProgressSchema(Schema):
    """How far a run is: the vendors owed when it started, cut into shards that the workers
    pay side by side."""

    vendors = fields.Integer(required=True)
    shards = fields.Integer(required=True)
    shards_done = fields.Integer(required=True)


class PayoutRunDetailSchema(PayoutRunSchema):
    payouts = fields.List(fields.Nested(PayoutSchema), required=True)
