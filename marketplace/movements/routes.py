"""GET /api/admin/movements and POST /api/admin/movements/{id}/retry."""
from marketplace.movements import engine
from marketplace.movements.schemas import MovementListArgsSchema, MovementSchema
from marketplace.openapi import Blueprint
from marketplace.pagination import list_schema

blp = Blueprint("admin_movements", __name__, url_prefix="/api/admin/movements",
                description="Money movements (transfers, reversals, refunds, payouts)")


@blp.route("")
@blp.auth("admin")
@blp.arguments(MovementListArgsSchema, location="query")
@blp.response(200, list_schema(MovementSchema, "MovementList"))
def list_movements(args):
    """Movements, newest first; filters `?status=&kind=` (`needs_attention`: what waits for an admin)."""
    return engine.list_movements(**args)


@blp.route("/<movement_id>/retry", methods=["POST"])
@blp.auth("admin")
@blp.response(202, MovementSchema)
@blp.errors(404, 409)
def retry_movement(movement_id):
    """Try a movement that needs attention again (due now; its attempts counted anew)."""
    return engine.retry(movement_id)
