"""Bodies of /api/admin/movements."""
from marshmallow import Schema, fields, validate

from marketplace.database import isoformat
from marketplace.movements.models import KINDS, STATUSES
from marketplace.pagination import PageArgsSchema


def _time(name: str, description: str = ""):
    return fields.Function(lambda m: isoformat(getattr(m, name)), allow_none=True,
                           metadata={"type": "string", "format": "date-time", "description": description})


class MovementSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"enum": list(KINDS)})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    stripe_account = fields.String(allow_none=True, metadata={"description": "the account the call is made on (null: the platform)"})
    destination = fields.String(allow_none=True)
    source_id = fields.String(allow_none=True, metadata={"description": "the Stripe object it draws on"})
    stripe_id = fields.String(allow_none=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = _time("next_attempt_at", "when it is tried next (unfinished movements)")
    created_at = _time("created_at")
    finished_at = _time("finished_at")
    order_id = fields.String(allow_none=True)
    refund_id = fields.String(allow_none=True)
    dispute_id = fields.String(allow_none=True)
    payout_id = fields.String(allow_none=True)
    vendor_id = fields.String(allow_none=True)


class MovementListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    kind = fields.String(validate=validate.OneOf(KINDS))
