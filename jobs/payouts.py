"""Payout jobs: a queued payout run, its shards, and the daily run."""
from jobs import job


@job
def execute_payout_run(run_id: str) -> str:
    """Execute a queued payout run (a run already started or done is left alone)."""
    from marketplace.payouts import runs

    return runs.execute(run_id, wait_for_end=False).status


@job
def run_payout_shard(shard_id: str) -> str:
    """Pay the vendors of one shard of a run (a shard someone else holds is left alone)."""
    from marketplace.payouts import runs

    return runs.run_shard(shard_id)


@job
def resume_payout_shards() -> int:
    """Queue again the shards whose holder went silent (a killed worker)."""
    from marketplace.payouts import runs

    return runs.resume_shards()


@job
def daily_payout_run() -> str:
    """The scheduled run over every currency (the workers pay its shards)."""
    from marketplace.payouts import service

    return service.run_now(wait_for_end=False).status
