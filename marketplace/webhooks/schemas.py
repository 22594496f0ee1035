"""Bodies of /api/webhooks/stripe and /api/admin/webhook-events."""
from marshmallow import Schema, fields, validate

from marketplace.database import isoformat
from marketplace.pagination import PageArgsSchema
from marketplace.webhooks.models import STATUSES


class WebhookAckSchema(Schema):
    received = fields.Boolean(required=True)
    duplicate = fields.Boolean(metadata={"description": "present (true) when the event was already stored"})


class WebhookEventSchema(Schema):
    id = fields.String(required=True)
    stripe_event_id = fields.String(required=True)
    type = fields.String(required=True)
    account = fields.String(allow_none=True, metadata={"description": "the connected account, for Connect events"})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    received_at = fields.Function(
        lambda e: isoformat(e.received_at), required=True, metadata={"type": "string", "format": "date-time"}
    )
    reason = fields.String(allow_none=True, metadata={"description": "why an event was ignored"})
    source = fields.String(required=True, metadata={"enum": ["webhook", "sync"]})
    processed_at = fields.Function(
        lambda e: isoformat(e.processed_at), allow_none=True, metadata={"type": "string", "format": "date-time"}
    )
    next_attempt_at = fields.Function(
        lambda e: isoformat(e.next_attempt_at), allow_none=True,
        metadata={"type": "string", "format": "date-time", "description": "when the retry after a failed attempt is due"},
    )


class WebhookEventListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    type = fields.String(validate=validate.Length(min=1, max=100))
