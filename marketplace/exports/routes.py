"""GET /api/admin/exports/journal and /api/admin/exports/payouts: streamed CSV."""
from marketplace.exports import service, writer
from marketplace.exports.schemas import ExportWindowArgsSchema, csv_response
from marketplace.openapi import Blueprint

blp = Blueprint("admin_exports", __name__, url_prefix="/api/admin/exports",
                description="Accounting exports (CSV)")

_JOURNAL = "One row per ledger posting of the entries occurred in [from, to), streamed"
_PAYOUTS = "One row per payout created in [from, to) (dry runs left out), streamed"


@blp.route("/journal")
@blp.auth("admin")
@blp.arguments(ExportWindowArgsSchema, location="query")
@blp.response(200, content_type="text/csv", description=_JOURNAL)
@blp.doc(responses={"200": csv_response(_JOURNAL)})
@blp.errors(422)
def journal(args):
    """The journal as CSV: debit/credit in minor units and as decimals, local and Stripe ids."""
    start, end = args["from_"], args["to"]
    return writer.attachment("journal", start, end, service.journal_csv(start, end))


@blp.route("/payouts")
@blp.auth("admin")
@blp.arguments(ExportWindowArgsSchema, location="query")
@blp.response(200, content_type="text/csv", description=_PAYOUTS)
@blp.doc(responses={"200": csv_response(_PAYOUTS)})
@blp.errors(422)
def payouts(args):
    """The payouts as CSV: amount in minor units and as a decimal, status, times, Stripe ids."""
    start, end = args["from_"], args["to"]
    return writer.attachment("payouts", start, end, service.payouts_csv(start, end))
