"""The jobs, by name. Job functions (RQ entry points) live in `jobs/` and import the
services; a service asks for a job by its name here and never imports `jobs/`, so there
is no import cycle between the two.

A name is the dotted path RQ imports. `check()` (run by create_app) imports every one, so
a wrong name stops the app at start-up instead of failing the first time the job runs.
"""
from __future__ import annotations

import importlib

DRIVE_MOVEMENT = "jobs.movements.drive_movement"
SWEEP_MOVEMENTS = "jobs.movements.sweep_movements"
PROCESS_EVENT = "jobs.webhooks.process_event_job"
EXECUTE_PAYOUT_RUN = "jobs.payouts.execute_payout_run"
DAILY_PAYOUT_RUN = "jobs.payouts.daily_payout_run"
RUN_PAYOUT_SHARD = "jobs.payouts.run_payout_shard"
RESUME_PAYOUT_SHARDS = "jobs.payouts.resume_payout_shards"
START_RECONCILIATION = "jobs.reconciliation.start_run"
RECONCILE_ACCOUNT = "jobs.reconciliation.reconcile_account"
DAILY_RECONCILIATION = "jobs.reconciliation.daily_reconciliation"
REAP_IDEMPOTENCY_KEYS = "jobs.maintenance.reap_idempotency_keys"
EXPIRE_UNPAID_ORDERS = "jobs.maintenance.expire_unpaid_orders"
REQUEUE_STALLED_WEBHOOK_EVENTS = "jobs.maintenance.requeue_stalled_webhook_events"
BOOK_UNSETTLED_PAYMENTS = "jobs.maintenance.book_unsettled_payments"
SWEEP_SUBSCRIPTIONS = "jobs.maintenance.sweep_subscriptions"
FOLLOW_VENDOR_SUBSCRIPTIONS = "jobs.maintenance.follow_vendor_subscriptions"

NAMES = frozenset(value for name, value in dict(globals()).items() if name.isupper() and name != "NAMES")


def is_task(name: str) -> bool:
    """Whether `name` is a registered job."""
    return name in NAMES


def check() -> None:
    """Import every registered job; raises ImportError/AttributeError on a wrong name."""
    for name in sorted(NAMES):
        module, _, function = name.rpartition(".")
        if not callable(getattr(importlib.import_module(module), function)):
            raise TypeError(f"job {name} is not a function")
