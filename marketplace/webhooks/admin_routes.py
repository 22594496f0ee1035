"""GET /api/admin/webhook-events and POST /api/admin/webhook-events/{id}/replay."""
from marketplace.openapi import Blueprint
from marketplace.pagination import list_schema
from marketplace.webhooks import service
from marketplace.webhooks.schemas import WebhookEventListArgsSchema, WebhookEventSchema

blp = Blueprint(
    "admin_webhook_events", __name__, url_prefix="/api/admin/webhook-events",
    description="Stored Stripe events",
)


@blp.route("")
@blp.auth("admin")
@blp.arguments(WebhookEventListArgsSchema, location="query")
@blp.response(200, list_schema(WebhookEventSchema, "WebhookEventList"))
def list_events(args):
    """Stored events, newest first; filters `?status=&type=`."""
    return service.list_events(**args)


@blp.route("/<event_id>/replay", methods=["POST"])
@blp.auth("admin")
@blp.response(202, WebhookEventSchema)
@blp.errors(404)
def replay_event(event_id):
    """Queue the event for processing again (a fresh attempt budget)."""
    return service.replay(event_id)
