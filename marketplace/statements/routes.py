"""GET /api/vendors/me/statements[/{month}] and /api/admin/vendors/{id}/statements/{month}."""
from marketplace.auth.guard import current_user
from marketplace.openapi import Blueprint
from marketplace.statements import export, service
from marketplace.statements.schemas import (
    FILE_RESPONSES,
    MONTH_PARAMETER,
    StatementArgsSchema,
    StatementMonthListSchema,
    StatementSchema,
)

vendor_blp = Blueprint("vendor_statements", __name__, url_prefix="/api/vendors/me/statements",
                       description="Vendors' monthly statements")
admin_blp = Blueprint("admin_statements", __name__, url_prefix="/api/admin/vendors",
                      description="Vendors' monthly statements (admin)")


@vendor_blp.route("")
@vendor_blp.auth("vendor")
@vendor_blp.response(200, StatementMonthListSchema)
@vendor_blp.errors(404)
def my_months():
    """The months (UTC) with activity on the vendor's balance, newest first, with their currencies."""
    return service.vendor_months(current_user())


@vendor_blp.route("/<month>", parameters=[MONTH_PARAMETER])
@vendor_blp.auth("vendor")
@vendor_blp.arguments(StatementArgsSchema, location="query")
@vendor_blp.response(200, StatementSchema)
@vendor_blp.doc(responses=FILE_RESPONSES)
@vendor_blp.errors(404, 422)
def my_statement(args, month):
    """The vendor's statement of a month: JSON, `?format=csv` or `?format=pdf`."""
    return export.respond(service.vendor_statement(current_user(), month), args["format"])


@admin_blp.route("/<vendor_id>/statements/<month>", parameters=[MONTH_PARAMETER])
@admin_blp.auth("admin")
@admin_blp.arguments(StatementArgsSchema, location="query")
@admin_blp.response(200, StatementSchema)
@admin_blp.doc(responses=FILE_RESPONSES)
@admin_blp.errors(404, 422)
def vendor_statement(args, vendor_id, month):
    """A vendor's statement of a month: JSON, `?format=csv` or `?format=pdf`."""
    return export.respond(service.admin_statement(vendor_id, month), args["format"])
