"""Payouts: vendor balances and payouts, admin payout runs, payout webhooks.

Routes, the CLI, the daily job and the webhook handlers call these; each call owns its
transaction. The run itself is in runs.py, the SQL in balances.py.
"""
from __future__ import annotations

from datetime import timedelta

from croniter import croniter
from flask import current_app
from sqlalchemy import func, select

from marketplace import audit, outbox, stripe_gateway, tasks
from marketplace.auth.models import User
from marketplace.database import isoformat, utcnow
from marketplace.errors import Conflict, NotFound
from marketplace.extensions import db
from marketplace.idempotency import bind, recovered
from marketplace.movements import engine
from marketplace.pagination import paginate
from marketplace.payouts import balances, ledger_entries, runs
from marketplace.payouts.locking import is_busy
from marketplace.payouts.models import Payout, PayoutRun
from marketplace.vendors.service import vendor_for_user

DAILY_RUN_CRON = "0 6 * * *"  # the schedule of the daily run (marketplace/worker.py)
_UNSETTLED = ("pending", "in_transit")


def vendor_balance(user: User) -> dict:
    """`{balances: [{currency, pending, available, paid_out, held}]}` (definitions: balances.py)."""
    vendor = vendor_for_user(user)
    cutoff = runs.now() - timedelta(days=current_app.config["PAYOUT_HOLD_DAYS"])
    result = {"balances": balances.vendor_balances(vendor.id, cutoff)}
    db.session.rollback()
    return result


def create_run(currency: str | None = None, dry_run: bool = False) -> PayoutRun:
    """Queue a payout run (executed by a job after commit); 409 while another run holds the lock."""
    run_id = recovered("payout_run")
    if run_id is not None:
        return db.session.get(PayoutRun, run_id)
    if is_busy():
        raise Conflict("A payout run is already in progress.", code="payout_run_in_progress")
    run = PayoutRun(currency=currency, dry_run=dry_run, status="queued")
    db.session.add(run)
    db.session.flush()
    bind("payout_run", run.id)
    outbox.add(tasks.EXECUTE_PAYOUT_RUN, run.id)
    audit.record("payout_run.created" + (".dry_run" if dry_run else ""), "payout_run", run.id, currency=currency)
    db.session.commit()
    return run


def run_now(currency: str | None = None, dry_run: bool = False, progress=None,
            wait_for_end: bool = True) -> PayoutRun:
    """Create a run and execute it in this process (the CLI and the daily job): this process
    works its shards beside the workers; with `wait_for_end`, until the run has ended. While
    a run is still under way (its process was killed, and no worker took its shards over),
    that run is resumed instead: its vendors not paid yet are paid, none twice."""
    open_run = runs.under_way()
    db.session.rollback()
    if open_run is not None:
        return runs.work(open_run, progress, until_ended=wait_for_end)
    run = PayoutRun(currency=currency, dry_run=dry_run, status="queued")
    db.session.add(run)
    db.session.flush()
    audit.record("payout_run.created" + (".dry_run" if dry_run else ""), "payout_run", run.id, currency=currency)
    db.session.commit()
    return runs.execute(run.id, progress, wait_for_end=wait_for_end)


def list_runs(page: int = 1, per_page: int = 20) -> dict:
    """Payout runs, newest first."""
    stmt = select(PayoutRun).order_by(PayoutRun.created_at.desc(), PayoutRun.id.desc())
    return paginate(stmt, page, per_page).as_dict()


def get_run(run_id: str) -> PayoutRun:
    """One payout run with its payouts; 404 when unknown."""
    run = db.session.get(PayoutRun, run_id)
    if run is None:
        raise NotFound("No such payout run.", code="payout_run_not_found")
    return run


def vendor_payouts(user: User, status: str | None = None, page: int = 1, per_page: int = 20) -> dict:
    """The vendor's payouts, newest first, with a summary.

    `summary.total_paid` / `total_pending` (pending and in transit) are in the currency
    `summary.currency` (the vendor's most recent payout's currency, else the first
    supported currency); `summary.by_currency` lists every currency the vendor was paid in.
    """
    vendor = vendor_for_user(user)
    stmt = select(Payout).where(Payout.vendor_id == vendor.id, Payout.dry_run.is_(False))
    if status:
        stmt = stmt.where(Payout.status == status)
    result = paginate(stmt.order_by(Payout.created_at.desc(), Payout.id.desc()), page, per_page).as_dict()
    result["summary"] = _summary(vendor.id)
    return result


def _summary(vendor_id: str) -> dict:
    rows = db.session.execute(
        select(Payout.currency,
               func.coalesce(func.sum(Payout.amount).filter(Payout.status == "paid"), 0),
               func.coalesce(func.sum(Payout.amount).filter(Payout.status.in_(_UNSETTLED)), 0),
               func.max(Payout.created_at))
        .where(Payout.vendor_id == vendor_id, Payout.dry_run.is_(False))
        .group_by(Payout.currency)
    ).all()
    by_currency = [{"currency": c, "total_paid": int(p), "total_pending": int(q)} for c, p, q, _ in rows]
    main = max(rows, key=lambda row: row[3])[0] if rows else current_app.config["SUPPORTED_CURRENCIES"][0]
    totals = next((item for item in by_currency if item["currency"] == main),
                  {"total_paid": 0, "total_pending": 0})
    return {"total_paid": totals["total_paid"], "total_pending": totals["total_pending"],
            "currency": main, "next_payout_date": next_payout_date(), "by_currency": by_currency}


def next_payout_date() -> str:
    """When the daily run next starts (ISO 8601 UTC)."""
    return isoformat(croniter(DAILY_RUN_CRON, utcnow()).get_next(type(utcnow())))


def _sync(stripe_payout: dict, account: str | None) -> Payout | None:
    """Bring our payout in line with Stripe's, re-fetched (state only moves forward)."""
    current = stripe_gateway.retrieve_payout(stripe_payout["id"], account)
    engine.shown(current)  # its movement records it first if its answer was lost
    payout = db.session.scalar(select(Payout).where(Payout.stripe_payout_id == current["id"]).with_for_update())
    if payout is None:
        local_id = (current.get("metadata") or {}).get("payout_id")
        payout = db.session.get(Payout, local_id, with_for_update=True) if local_id else None
        if payout is None or payout.dry_run or payout.stripe_payout_id not in (None, current["id"]):
            db.session.rollback()
            return None
        ledger_entries.record_created(payout, current)  # its run died before recording it
    ledger_entries.move_forward(payout, current)
    payout_id = payout.id
    db.session.commit()
    return db.session.get(Payout, payout_id)


def handle_payout_paid(payout: dict, account: str | None = None) -> Payout | None:
    """payout.paid: the payout reached the vendor's bank."""
    return _sync(payout, account)


def handle_payout_failed(payout: dict, account: str | None = None) -> Payout | None:
    """payout.failed: the money is back on the vendor's balance (reversing ledger entry)."""
    return _sync(payout, account)


def handle_payout_canceled(payout: dict, account: str | None = None) -> Payout | None:
    """payout.canceled: the money is back on the vendor's balance (reversing ledger entry)."""
    return _sync(payout, account)
