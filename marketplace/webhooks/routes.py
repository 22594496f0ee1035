"""POST /api/webhooks/stripe: no bearer token, the Stripe-Signature header is the credential."""
from flask import request

from marketplace.openapi import Blueprint
from marketplace.webhooks import service
from marketplace.webhooks.schemas import WebhookAckSchema

blp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks", description="Stripe webhooks")

_RAW_EVENT = {
    "required": True,
    "description": "A Stripe event, signed in the `Stripe-Signature` header; verified on the raw bytes.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_SIGNATURE = {
    "name": "Stripe-Signature", "in": "header", "required": True,
    "schema": {"type": "string"}, "description": "t=<unix>,v1=<hex HMAC-SHA256>[,v1=...]",
}


@blp.route("/stripe", methods=["POST"])
@blp.doc(requestBody=_RAW_EVENT, parameters=[_SIGNATURE])
@blp.response(200, WebhookAckSchema)
@blp.errors(400, 413)
def receive_stripe_event():
    """Verify, store once and acknowledge a Stripe event; a job processes it."""
    duplicate = service.receive(request.get_data(), request.headers.get("Stripe-Signature"))
    return {"received": True, "duplicate": True} if duplicate else {"received": True}
