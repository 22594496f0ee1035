"""Bodies of the statement endpoints."""
from marshmallow import Schema, fields, validate

from marketplace.statements.export import FORMATS
from marketplace.statements.query import KINDS

_DATE = {"format": "date-time"}
_MAGNITUDE = {"description": "minor units, never negative"}


class StatementArgsSchema(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS), metadata={
        "description": "json (default), csv (`text/csv`) or pdf (`application/pdf`)"})


class StatementBalanceSchema(Schema):
    currency = fields.String(required=True)
    opening = fields.Integer(required=True, metadata={"description": "the balance carried in"})
    sales = fields.Integer(required=True, metadata={
        "description": "gross sales of the month, plus `credits`"})
    platform_fees = fields.Integer(required=True, metadata=_MAGNITUDE)
    refunds = fields.Integer(required=True, metadata={
        "description": "what refunds took from the balance (the refunded share less the platform fee returned)"})
    disputes = fields.Integer(required=True, metadata={"description": "recovered by disputes, less given back"})
    payouts = fields.Integer(required=True, metadata={
        "description": "payouts created at Stripe this month, less failed or canceled ones"})
    closing = fields.Integer(required=True, metadata={
        "description": "opening + sales - platform_fees - refunds - disputes - payouts"})
    credits = fields.Integer(required=True, metadata={
        "description": "money given back this month beyond the month's own refunds, disputes or payouts "
                       "(e.g. a dispute won this month, opened earlier); counted in `sales`"})


class StatementLineSchema(Schema):
    at = fields.String(required=True, metadata=_DATE)
    kind = fields.String(required=True, metadata={"enum": list(KINDS)})
    currency = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={
        "description": "signed effect on the balance, minor units (a sale: its gross; its fee is a "
                       "platform_fee line)"})
    order_id = fields.String(allow_none=True)
    payout_id = fields.String(allow_none=True)
    stripe_id = fields.String(allow_none=True, metadata={"description": "the Stripe object the ledger entry records"})


class StatementPeriodSchema(Schema):
    start = fields.String(required=True, metadata=_DATE)
    end = fields.String(required=True, metadata=_DATE)


class StatementSchema(Schema):
    vendor_id = fields.String(required=True)
    vendor_name = fields.String(required=True)
    month = fields.String(required=True, metadata={"example": "2026-11"})
    period = fields.Nested(StatementPeriodSchema, required=True,
                           metadata={"description": "the month's UTC bounds, [start, end)"})
    balances = fields.List(fields.Nested(StatementBalanceSchema), required=True)
    lines = fields.List(fields.Nested(StatementLineSchema), required=True)


class StatementMonthSchema(Schema):
    month = fields.String(required=True, metadata={"example": "2026-11"})
    currencies = fields.List(fields.String(), required=True)


class StatementMonthListSchema(Schema):
    data = fields.List(fields.Nested(StatementMonthSchema), required=True)


# The other formats of a statement, beside its JSON.
FILE_RESPONSES = {200: {"content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
}}}
MONTH_PARAMETER = {"in": "path", "name": "month", "required": True,
                   "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                   "description": "YYYY-MM, a UTC calendar month"}
