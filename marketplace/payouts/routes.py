"""GET /api/vendors/me/balance, /api/vendors/me/payouts and /api/admin/payout-runs."""
from marketplace.auth.guard import current_user
from marketplace.idempotency import idempotent
from marketplace.openapi import Blueprint
from marketplace.pagination import PageArgsSchema, list_schema
from marketplace.payouts import service
from marketplace.payouts.schemas import (
    BalancesSchema,
    PayoutListArgsSchema,
    PayoutListSchema,
    PayoutRunCreateSchema,
    PayoutRunDetailSchema,
    PayoutRunSchema,
)

vendor_blp = Blueprint("vendor_payouts", __name__, url_prefix="/api/vendors/me",
                       description="Vendor balances and payouts")
admin_blp = Blueprint("admin_payout_runs", __name__, url_prefix="/api/admin/payout-runs",
                      description="Batched vendor payouts")


@vendor_blp.route("/balance")
@vendor_blp.auth("vendor")
@vendor_blp.response(200, BalancesSchema)
@vendor_blp.errors(404)
def my_balance():
    """The vendor's balances per currency, from the ledger."""
    return service.vendor_balance(current_user())


@vendor_blp.route("/payouts")
@vendor_blp.auth("vendor")
@vendor_blp.arguments(PayoutListArgsSchema, location="query")
@vendor_blp.response(200, PayoutListSchema)
@vendor_blp.errors(404)
def my_payouts(args):
    """The vendor's payouts, newest first, with a summary; filter `?status=`."""
    return service.vendor_payouts(current_user(), **args)


@admin_blp.route("", methods=["POST"])
@admin_blp.auth("admin")
@idempotent
@admin_blp.arguments(PayoutRunCreateSchema)
@admin_blp.response(202, PayoutRunSchema)
@admin_blp.errors(409, 422)
def create_run(body):
    """Queue a payout run (it runs in a job); 409 while another run is in progress."""
    return service.create_run(body["currency"], body["dry_run"])


@admin_blp.route("")
@admin_blp.auth("admin")
@admin_blp.arguments(PageArgsSchema, location="query")
@admin_blp.response(200, list_schema(PayoutRunSchema, "PayoutRunList"))
def list_runs(args):
    """Payout runs, newest first."""
    return service.list_runs(**args)


@admin_blp.route("/<run_id>")
@admin_blp.auth("admin")
@admin_blp.response(200, PayoutRunDetailSchema)
@admin_blp.errors(404)
def get_run(run_id):
    """One payout run with its payouts."""
    return service.get_run(run_id)
