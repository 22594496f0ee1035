"""`flask reconcile run --from T --to T`: reconcile a window in this process, with a progress bar."""
from __future__ import annotations

from datetime import datetime, timezone

import click
from flask.cli import AppGroup

reconcile_cli = AppGroup("reconcile", help="Check the ledger against Stripe's balance transactions.")


def _parse(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("must be an ISO 8601 timestamp, e.g. 2026-11-21T00:00:00Z", param_hint=name) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@reconcile_cli.command("run")
@click.option("--from", "start", required=True, help="Window start, ISO 8601 (UTC when no zone is given).")
@click.option("--to", "end", required=True, help="Window end (exclusive), ISO 8601.")
def run_command(start: str, end: str) -> None:
    """Reconcile every Stripe account over [from, to) and print the counts and discrepancies."""
    from marketplace.errors import AppError
    from marketplace.reconciliation import service

    start_at, end_at = _parse(start, "--from"), _parse(end, "--to")
    accounts = service.accounts()
    click.echo(f"reconciling {len(accounts)} account(s) from {start_at.isoformat()} to {end_at.isoformat()}")
    with click.progressbar(length=len(accounts), label="accounts", show_pos=True,
                           item_show_func=lambda key: key or "") as bar:
        def done(key, tally):
            bar.update(1, key)
        try:
            run = service.run_now(start_at, end_at, on_account=done)
        except AppError as error:
            raise click.ClickException(f"{error.message} {error.details or ''}".strip()) from None
    counts = run.counts
    click.echo(f"run {run.id}: {run.status}, {run.accounts_checked} account(s), "
               f"{run.transactions_checked} balance transaction(s)")
    click.echo("  ".join(f"{name}={value}" for name, value in counts.items()))
    for d in service.discrepancies(run.id, limit=50):
        click.echo(f"  {d.kind:18} {d.account:24} {d.balance_transaction_id} source={d.source_id} "
                   f"ledger={d.expected_amount}/{d.expected_fee} stripe={d.actual_amount}/{d.actual_fee} {d.currency or ''}")
    if sum(counts.values()) - counts["matched"] > 50:
        click.echo("  ... (see GET /api/admin/reconciliation-runs/<id> for the rest)")
