"""/api/subscriptions and /api/vendors/me/subscriptions."""
from marketplace.auth.guard import current_user
from marketplace.idempotency import idempotent
from marketplace.openapi import Blueprint
from marketplace.pagination import PageArgsSchema
from marketplace.ratelimit import configured, limiter
from marketplace.subscriptions import service
from marketplace.subscriptions.schemas import (
    CancelSchema,
    SubscribeSchema,
    SubscriptionListSchema,
    SubscriptionSchema,
    VendorSubscriptionListSchema,
)

blp = Blueprint("subscriptions", __name__, url_prefix="/api/subscriptions", description="Shoppers' subscriptions")
vendor_blp = Blueprint("vendor_subscriptions", __name__, url_prefix="/api/vendors/me/subscriptions",
                       description="Vendors' subscribers")


@blp.route("", methods=["POST"])
@limiter.limit(configured("RATELIMIT_CHECKOUT"))
@blp.auth("shopper")
@idempotent
@blp.arguments(SubscribeSchema)
@blp.response(201, SubscriptionSchema)
@blp.errors(402, 404, 409, 422, 429, 502, 503)
def subscribe(body):
    """Subscribe to a vendor's recurring product; `incomplete` with `next_action` when the
    first payment needs 3-D Secure."""
    subscription, next_action = service.subscribe(current_user(), body["product_id"], body.get("payment_method"))
    subscription.next_action = next_action
    return subscription


@blp.route("")
@blp.auth("shopper", "admin")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, SubscriptionListSchema)
def list_subscriptions(args):
    """The shopper's subscriptions (an admin: everyone's), newest first."""
    return service.list_for(current_user(), args["page"], args["per_page"])


@blp.route("/<subscription_id>")
@blp.auth("shopper", "admin")
@blp.response(200, SubscriptionSchema)
@blp.errors(404)
def get_subscription(subscription_id):
    """One subscription, its latest invoice and the order that booked it."""
    return service.get(current_user(), subscription_id)


@blp.route("/<subscription_id>/cancel", methods=["POST"])
@blp.auth("shopper", "admin")
@idempotent
@blp.arguments(CancelSchema)
@blp.response(200, SubscriptionSchema)
@blp.errors(404, 409, 502, 503)
def cancel_subscription(body, subscription_id):
    """End the subscription at its period's end, or now."""
    return service.cancel(current_user(), subscription_id, body["at_period_end"])


@vendor_blp.route("")
@vendor_blp.auth("vendor")
@vendor_blp.arguments(PageArgsSchema, location="query")
@vendor_blp.response(200, VendorSubscriptionListSchema)
@vendor_blp.errors(404)
def my_subscribers(args):
    """The vendor's subscribers, with the active count and monthly recurring revenue by currency."""
    return service.for_vendor(current_user(), args["page"], args["per_page"])
