"""Bodies of /api/admin/reconciliation-runs."""

from marshmallow import Schema, fields, validate

from marketplace.database import isoformat
from marketplace.movements.schemas import MovementSchema
from marketplace.openapi import Timestamp
from marketplace.pagination import PageArgsSchema
from marketplace.reconciliation.models import KINDS, STATUSES

_TIME = {"type": "string", "format": "date-time"}


class RunCreateSchema(Schema):
    from_ = Timestamp(data_key="from", required=True, metadata={"description": "window start (inclusive), ISO 8601"})
    to = Timestamp(required=True, metadata={"description": "window end (exclusive), ISO 8601"})


class CountsSchema(Schema):
    matched = fields.Integer(required=True)
    missing_in_ledger = fields.Integer(required=True)
    missing_in_stripe = fields.Integer(required=True)
    amount_mismatch = fields.Integer(required=True)


class DiscrepancySchema(Schema):
    kind = fields.String(required=True, metadata={"enum": list(KINDS)})
    stripe_account = fields.String(required=True, allow_none=True,
                                   metadata={"description": "null for the platform's own balance"})
    balance_transaction_id = fields.String(required=True)
    source_id = fields.String(required=True, allow_none=True)
    expected_amount = fields.Integer(required=True, metadata={"description": "the ledger's amount (0: none)"})
    actual_amount = fields.Integer(required=True, metadata={"description": "Stripe's amount (0: none)"})
    expected_fee = fields.Integer(required=True)
    actual_fee = fields.Integer(required=True)
    currency = fields.String(allow_none=True)
    ledger_entry_id = fields.String(allow_none=True)
    detail = fields.String()


class RunSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    from_ = fields.Function(lambda r: isoformat(r.window_start), data_key="from", required=True, metadata=_TIME)
    to = fields.Function(lambda r: isoformat(r.window_end), required=True, metadata=_TIME)
    accounts_checked = fields.Integer(required=True)
    accounts_total = fields.Integer(required=True)
    transactions_checked = fields.Integer(required=True)
    counts = fields.Nested(CountsSchema, required=True)
    trigger = fields.String()
    last_error = fields.String(allow_none=True)
    created_at = fields.Function(lambda r: isoformat(r.created_at), metadata=_TIME)
    started_at = fields.Function(lambda r: isoformat(r.started_at), allow_none=True, metadata=_TIME)
    finished_at = fields.Function(lambda r: isoformat(r.finished_at), allow_none=True, metadata=_TIME)


class RunDetailSchema(RunSchema):
    discrepancies = fields.List(fields.Nested(DiscrepancySchema), required=True,
                                metadata={"description": "the first 1000, by account; all of them, a page at a time, "
                                                         "at /api/admin/reconciliation-runs/{id}/discrepancies"})
    movements_needing_attention = fields.List(
        fields.Nested(MovementSchema), required=True,
        metadata={"description": "movements of money that could not finish and need an admin, now (the first "
                                 "100, oldest first; all at /api/admin/movements?status=needs_attention)"})


RunListArgsSchema = PageArgsSchema


class DiscrepancyListArgsSchema(PageArgsSchema):
    kind = fields.String(validate=validate.OneOf(KINDS), metadata={"description": "only discrepancies of this kind"})
