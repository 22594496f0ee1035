"""Reconciliation jobs: a queued run fanned out per account, one account, the daily run."""
from jobs import job


@job
def start_run(run_id: str) -> list[str]:
    """Start a queued run: one reconcile_account job per Stripe account."""
    from marketplace.reconciliation import service

    return service.start(run_id)


@job
def reconcile_account(run_id: str, account: str) -> dict:
    """Reconcile one account of a run; the last one completes the run."""
    from marketplace.reconciliation import service

    return service.reconcile_account(run_id, account).counts()


@job
def daily_reconciliation() -> str:
    """Queue a run over yesterday (UTC)."""
    from marketplace.reconciliation import service

    return service.create_daily_run().id
