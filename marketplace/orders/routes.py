"""/api/orders: create, list, read and cancel."""
from marketplace.auth.guard import current_user
from marketplace.idempotency import idempotent
from marketplace.openapi import Blueprint
from marketplace.ratelimit import configured, limiter
from marketplace.orders import service
from marketplace.orders.schemas import OrderCreateSchema, OrderListArgsSchema, OrderSchema
from marketplace.pagination import list_schema

blp = Blueprint("orders", __name__, url_prefix="/api/orders", description="Orders")


@blp.route("", methods=["POST"])
@limiter.limit(configured("RATELIMIT_CHECKOUT"))
@blp.auth("shopper")
@idempotent
@blp.arguments(OrderCreateSchema)
@blp.response(201, OrderSchema)
@blp.errors(409, 422, 429)
def create_order(body):
    """Order products (prices from the catalog); stock is reserved atomically. Honours Idempotency-Key."""
    return service.create_order(current_user(), body["items"])


@blp.route("")
@blp.auth("shopper", "admin")
@blp.arguments(OrderListArgsSchema, location="query")
@blp.response(200, list_schema(OrderSchema, "OrderList"))
def list_orders(args):
    """The caller's orders (an admin sees all); filters status, vendor_id, from, to."""
    return service.list_orders(current_user(), **args)


@blp.route("/<order_id>")
@blp.auth("shopper", "admin")
@blp.response(200, OrderSchema)
@blp.errors(404)
def get_order(order_id):
    """One order (its owner or an admin)."""
    return service.get_order(current_user(), order_id)


@blp.route("/<order_id>/cancel", methods=["POST"])
@blp.auth("shopper")
@idempotent
@blp.response(200, OrderSchema)
@blp.errors(404, 409, 502, 503)
def cancel_order(order_id):
    """Cancel an unpaid order: stock released, PaymentIntent (if any) canceled."""
    return service.cancel_order(current_user(), order_id)
