"""Payout jobs: a queued payout run, and the daily run."""
from jobs import job


@job
def execute_payout_run(run_id: str) -> str:
    """Execute a queued payout run (a run already started or done is left alone)."""
    from marketplace.payouts import runs

    return runs.execute(run_id).status


@job
def daily_payout_run() -> str:
    """The scheduled run over every currency."""
    from marketplace.payouts import service

    return service.run_now().status
