"""Reconciliation runs: queue a run, fan out one job per Stripe account, complete with the last.

A run covers [window_start, window_end). `start()` lists the accounts (the platform and
every vendor with a Stripe account) and queues one `reconcile_account` job each through the
outbox. Each account job streams that account's balance transactions page by page and
merges them with the ledger (matching.py), writing discrepancies in batches. Its counts
reach the run in one transaction at its end (`UPDATE ... SET matched = matched + :n`), and
the job that finishes the last account completes the run. Rerunning an account job is
safe: a newer attempt supersedes an older one, discrepancies are kept for the latest
attempt only, and counts are added as the difference from what that account added before.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from math import ceil
from types import SimpleNamespace
from typing import Callable

from sqlalchemy import delete, select, update

from marketplace import audit, outbox, stripe_gateway, tasks
from marketplace.database import utcnow
from marketplace.errors import NotFound, ValidationFailed
from marketplace.extensions import db
from marketplace.idempotency import bind, recovered
from marketplace.movements import engine
from marketplace.pagination import paginate
from marketplace.reconciliation import journal
from marketplace.reconciliation.matching import Finding, LedgerRow, Matcher, Tally
from marketplace.reconciliation.models import (
    COUNTERS, PLATFORM, Discrepancy, ReconciliationAccount, ReconciliationRun,
)
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=31)
WRITE_BATCH = 500
Progress = Callable[[int], None]


def validate_window(start: datetime, end: datetime) -> None:
    """422 unless start < end and the window spans at most MAX_WINDOW."""
    if start >= end:
        raise ValidationFailed(details={"to": ["Must be later than from."]})
    if end - start > MAX_WINDOW:
        raise ValidationFailed(details={"to": [f"The window may span at most {MAX_WINDOW.days} days."]})


def create_run(start: datetime, end: datetime, trigger: str = "api") -> ReconciliationRun:
    """Queue a run over [start, end); its jobs start after the commit."""
    run_id = recovered("reconciliation_run")
    if run_id is not None:
        return db.session.get(ReconciliationRun, run_id)
    validate_window(start, end)
    run = ReconciliationRun(window_start=start, window_end=end, trigger=trigger, status="queued")
    db.session.add(run)
    db.session.flush()
    bind("reconciliation_run", run.id)
    outbox.add(tasks.START_RECONCILIATION, run.id)
    audit.record("reconciliation_run.created", "reconciliation_run", run.id)
    db.session.commit()
    return run


def accounts() -> list[str]:
    """The platform and every vendor's connected account."""
    stmt = select(Vendor.stripe_account_id).where(Vendor.stripe_account_id.is_not(None))
    return [PLATFORM, *sorted(db.session.scalars(stmt))]


def start(run_id: str, fan_out: bool = True) -> list[str]:
    """Move a queued run to running with one account row (and job) per account; returns them."""
    run = db.session.execute(
        select(ReconciliationRun).where(ReconciliationRun.id == run_id).with_for_update()
    ).scalar_one_or_none()
    if run is None:
        raise NotFound("No such reconciliation run.", code="reconciliation_run_not_found")
    if run.status != "queued":
        keys = list(db.session.scalars(select(ReconciliationAccount.account).where(
            ReconciliationAccount.run_id == run_id).order_by(ReconciliationAccount.account)))
        db.session.rollback()
        return keys  # started before: its account jobs are already recorded
    keys = accounts()
    run.status, run.started_at, run.accounts_total = "running", utcnow(), len(keys)
    for key in keys:
        db.session.add(ReconciliationAccount(run_id=run.id, account=key))
        if fan_out:
            outbox.add(tasks.RECONCILE_ACCOUNT, run.id, key)
    db.session.commit()
    return keys


def run_now(start_at: datetime, end_at: datetime, on_account: Callable[[str, Tally], None] | None = None,
            progress: Progress | None = None) -> ReconciliationRun:
    """Create a run and reconcile every account in this process, in order (the CLI, the daily job)."""
    validate_window(start_at, end_at)
    run = ReconciliationRun(window_start=start_at, window_end=end_at, trigger="cli", status="queued")
    db.session.add(run)
    db.session.commit()
    for key in start(run.id, fan_out=False):
        tally = reconcile_account(run.id, key, progress)
        if on_account:
            on_account(key, tally)
    return get_run(run.id)


def reconcile_account(run_id: str, key: str, progress: Progress | None = None) -> Tally:
    """Reconcile one account of a run (idempotent); completes the run when it is the last."""
    attempt = _begin_attempt(run_id, key)
    run = db.session.get(ReconciliationRun, run_id)
    lo, hi = ceil(run.window_start.timestamp()), ceil(run.window_end.timestamp())
    db.session.rollback()
    account = None if key == PLATFORM else key
    matcher = Matcher(account, journal.entries_by_transaction, _listed_on_stripe(account, lo, hi))
    try:
        bts = stripe_gateway.iter_balance_transactions(account, lo, hi)
        rows = journal.entries_in_window(account, journal.from_unix(lo), journal.from_unix(hi))
        _write_findings(run_id, key, attempt, matcher.run(_counted(bts, progress), rows))
    except Exception as error:
        db.session.rollback()
        _record_failure(run_id, key, attempt, error)
        raise
    _finish(run_id, key, attempt, matcher.tally)
    return matcher.tally


def _counted(bts, progress: Progress | None):
    if progress is None:
        yield from bts
        return
    for n, bt in enumerate(bts, 1):
        yield bt
        if n % 100 == 0:
            progress(100)


def _listed_on_stripe(account: str | None, lo: int, hi: int) -> Callable[[LedgerRow], bool]:
    def listed(row: LedgerRow) -> bool:
        bt = stripe_gateway.retrieve_balance_transaction(row.bt_id, account)
        return bt is not None and lo <= int(bt["created"]) < hi
    return listed


def _begin_attempt(run_id: str, key: str) -> int:
    row = db.session.execute(
        select(ReconciliationAccount).where(
            ReconciliationAccount.run_id == run_id, ReconciliationAccount.account == key
        ).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No such account in this reconciliation run.", code="reconciliation_account_not_found")
    row.attempt += 1
    row.status, row.started_at, row.last_error = "running", utcnow(), None
    attempt = row.attempt
    db.session.commit()
    return attempt


def _write_findings(run_id: str, key: str, attempt: int, findings) -> None:
    batch: list[dict] = []
    for finding in findings:
        batch.append(_discrepancy(run_id, key, attempt, finding))
        if len(batch) >= WRITE_BATCH:
            db.session.execute(Discrepancy.__table__.insert(), batch)
            db.session.commit()
            batch = []
    if batch:
        db.session.execute(Discrepancy.__table__.insert(), batch)
        db.session.commit()


def _discrepancy(run_id: str, key: str, attempt: int, f: Finding) -> dict:
    from marketplace.database import new_id

    return {
        "id": new_id("dsc"), "run_id": run_id, "account": key, "attempt": attempt, "kind": f.kind,
        "balance_transaction_id": f.bt_id, "source_id": f.source_id, "ledger_entry_id": f.entry_id,
        "currency": f.currency, "expected_amount": f.expected_amount, "actual_amount": f.actual_amount,
        "expected_fee": f.expected_fee, "actual_fee": f.actual_fee, "detail": f.detail[:300],
        "created_at": utcnow(),
    }


def _finish(run_id: str, key: str, attempt: int, tally: Tally) -> None:
    """One transaction: keep this attempt's discrepancies, add its counts, maybe complete the run."""
    row = db.session.execute(
        select(ReconciliationAccount).where(
            ReconciliationAccount.run_id == run_id, ReconciliationAccount.account == key
        ).with_for_update()
    ).scalar_one()
    mine = (Discrepancy.run_id == run_id) & (Discrepancy.account == key)
    if row.attempt != attempt:  # a newer attempt owns this account now
        db.session.execute(delete(Discrepancy).where(mine & (Discrepancy.attempt == attempt)))
        db.session.commit()
        return
    db.session.execute(delete(Discrepancy).where(mine & (Discrepancy.attempt != attempt)))
    # The row's counters are exactly what this account has added to the run so far.
    before, old_transactions = row.counts, row.transactions
    first_completion = row.finished_at is None
    now = tally.counts()
    for name in COUNTERS:
        setattr(row, name, now[name])
    row.transactions, row.status, row.finished_at = tally.transactions, "completed", utcnow()
    deltas = {name: getattr(ReconciliationRun, name) + (now[name] - before[name]) for name in COUNTERS}
    db.session.execute(
        update(ReconciliationRun).where(ReconciliationRun.id == run_id).values(
            **deltas,
            transactions_checked=ReconciliationRun.transactions_checked + tally.transactions - old_transactions,
            accounts_checked=ReconciliationRun.accounts_checked + int(first_completion),
        )
    )
    checked, total = db.session.execute(
        select(ReconciliationRun.accounts_checked, ReconciliationRun.accounts_total)
        .where(ReconciliationRun.id == run_id)
    ).one()
    if checked >= total:
        db.session.execute(update(ReconciliationRun).where(ReconciliationRun.id == run_id).values(
            status="completed", finished_at=utcnow(), last_error=None))
    db.session.commit()
    if checked >= total:
        _name_stuck_movements(run_id)


def _name_stuck_movements(run_id: str) -> None:
    """A completed run names every movement that needs an admin (it moved no money yet)."""
    stuck = engine.needing_attention()
    if stuck:
        log.error("reconciliation %s: %d movement(s) need attention: %s", run_id, len(stuck),
                  ", ".join(f"{m.id} ({m.kind} {m.amount} {m.currency}: {m.last_error})" for m in stuck[:20]))
    db.session.rollback()


def _record_failure(run_id: str, key: str, attempt: int, error: Exception) -> None:
    message = f"{key}: {type(error).__name__}: {error}"[:1000]
    log.warning("reconciliation %s account %s failed: %s", run_id, key, message)
    db.session.execute(update(ReconciliationAccount).where(
        ReconciliationAccount.run_id == run_id, ReconciliationAccount.account == key,
        ReconciliationAccount.attempt == attempt).values(status="failed", last_error=message))
    db.session.execute(update(ReconciliationRun).where(ReconciliationRun.id == run_id).values(
        status="failed", last_error=message))
    db.session.commit()


def get_run(run_id: str) -> ReconciliationRun:
    """One run; 404 when unknown."""
    run = db.session.get(ReconciliationRun, run_id)
    if run is None:
        raise NotFound("No such reconciliation run.", code="reconciliation_run_not_found")
    return run


def discrepancies(run_id: str, limit: int = 1000) -> list[Discrepancy]:
    """The run's current discrepancies (the first `limit`), by account then transaction."""
    return list(db.session.scalars(_current_discrepancies(run_id).limit(limit)))


def list_discrepancies(run_id: str, page: int = 1, per_page: int = 20, kind: str | None = None) -> dict:
    """Every current discrepancy of a run, a page at a time, in the order of run_detail's."""
    get_run(run_id)  # 404 for an unknown run
    stmt = _current_discrepancies(run_id)
    if kind:
        stmt = stmt.where(Discrepancy.kind == kind)
    return paginate(stmt, page, per_page).as_dict()


def _current_discrepancies(run_id: str):
    """Discrepancies of each account's latest attempt (a rerun's replace the earlier ones)."""
    mine = select(ReconciliationAccount.account, ReconciliationAccount.attempt).where(
        ReconciliationAccount.run_id == run_id).subquery()
    return (
        select(Discrepancy).join(mine, (mine.c.account == Discrepancy.account) & (mine.c.attempt == Discrepancy.attempt))
        .where(Discrepancy.run_id == run_id)
        .order_by(Discrepancy.account, Discrepancy.kind, Discrepancy.balance_transaction_id, Discrepancy.id)
    )


def list_runs(page: int = 1, per_page: int = 20) -> dict:
    """Runs, newest first (without their discrepancies)."""
    stmt = select(ReconciliationRun).order_by(ReconciliationRun.created_at.desc(), ReconciliationRun.id.desc())
    return paginate(stmt, page, per_page).as_dict()


def run_detail(run_id: str) -> SimpleNamespace:
    """A run's fields with its discrepancies, for the admin API."""
    run = get_run(run_id)
    return SimpleNamespace(**{c: getattr(run, c) for c in (
        "id", "status", "window_start", "window_end", "accounts_checked", "accounts_total",
        "transactions_checked", "counts", "trigger", "last_error", "created_at", "started_at",
        "finished_at")}, discrepancies=discrepancies(run_id),
        movements_needing_attention=engine.needing_attention())


def create_daily_run(now: datetime | None = None) -> ReconciliationRun:
    """Queue a run over the whole of yesterday, UTC (the scheduled job)."""
    today = (now or utcnow()).replace(hour=0, minute=0, second=0, microsecond=0)
    return create_run(today - timedelta(days=1), today, trigger="schedule")
