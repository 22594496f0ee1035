"""`flask payouts run [--currency C] [--dry-run]`: a payout run, synchronously, with a progress bar."""
from __future__ import annotations

import sys
from contextlib import ExitStack

import click
from flask.cli import AppGroup

payouts_cli = AppGroup("payouts", help="Vendor payouts.")


@payouts_cli.command("run")
@click.option("--currency", default=None, help="Only this currency (ISO code); all by default.")
@click.option("--dry-run", is_flag=True, help="Compute and store the would-be payouts; pay nothing.")
def run_command(currency: str | None, dry_run: bool) -> None:
    """Pay every vendor what the ledger owes it (one run at a time)."""
    from marketplace.payouts import service
    from marketplace.payouts.runs import LOCKED

    with ExitStack() as stack:
        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(click.progressbar(length=total, label="vendors", file=sys.stderr))
            bar.update(done - bar.pos)

        run = service.run_now(currency.lower() if currency else None, dry_run, progress)
    if run.error == LOCKED:
        raise click.ClickException(f"{LOCKED}; run {run.id} was not started, try again later")
    verb = "would pay" if run.dry_run else "paid"
    click.echo(f"run {run.id} {run.status}: {verb} {run.payouts_created} payout(s), "
               f"total {run.total_amount} (minor units)")
    if run.status != "completed":
        raise click.ClickException(f"run {run.id} failed: {run.error}; run it again to resume")
