"""POST/GET /api/admin/reconciliation-runs."""
from marketplace.idempotency import idempotent
from marketplace.openapi import Blueprint
from marketplace.pagination import list_schema
from marketplace.reconciliation import service
from marketplace.reconciliation.schemas import (
    DiscrepancyListArgsSchema, DiscrepancySchema, RunCreateSchema, RunDetailSchema, RunListArgsSchema, RunSchema,
)

blp = Blueprint(
    "admin_reconciliation_runs", __name__, url_prefix="/api/admin/reconciliation-runs",
    description="Ledger against Stripe balance transactions",
)


@blp.route("", methods=["POST"])
@blp.auth("admin")
@idempotent
@blp.arguments(RunCreateSchema)
@blp.response(202, RunSchema)
@blp.errors(422)
def create_run(body):
    """Queue a run over [from, to) (at most 31 days); one job per Stripe account."""
    return service.create_run(body["from_"], body["to"])


@blp.route("")
@blp.auth("admin")
@blp.arguments(RunListArgsSchema, location="query")
@blp.response(200, list_schema(RunSchema, "ReconciliationRunList"))
def list_runs(args):
    """Runs, newest first."""
    return service.list_runs(**args)


@blp.route("/<run_id>")
@blp.auth("admin")
@blp.response(200, RunDetailSchema)
@blp.errors(404)
def get_run(run_id):
    """One run with its counts and discrepancies."""
    return service.run_detail(run_id)


@blp.route("/<run_id>/discrepancies")
@blp.auth("admin")
@blp.arguments(DiscrepancyListArgsSchema, location="query")
@blp.response(200, list_schema(DiscrepancySchema, "DiscrepancyList"))
@blp.errors(404)
def list_discrepancies(args, run_id):
    """Every discrepancy of a run, by account then transaction; filter by kind."""
    return service.list_discrepancies(run_id, **args)
