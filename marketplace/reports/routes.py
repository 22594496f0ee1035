"""GET /api/admin/reports/revenue."""
from marketplace.openapi import Blueprint
from marketplace.reports import service
from marketplace.reports.schemas import RevenueArgsSchema, RevenueReportSchema

blp = Blueprint("admin_reports", __name__, url_prefix="/api/admin/reports", description="Reports from the ledger")


@blp.route("/revenue")
@blp.auth("admin")
@blp.arguments(RevenueArgsSchema, location="query")
@blp.response(200, RevenueReportSchema)
@blp.errors(422)
def revenue(args):
    """Per currency: gross volume, platform fees, Stripe fees, refunds, disputes, net revenue."""
    return service.revenue(args.get("from_"), args.get("to"))
