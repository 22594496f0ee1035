"""Payout runs: per vendor and currency, pay out what the ledger says is due.

Steps of a run (one at a time, see locking.py):
1. compute: ONE grouped query over the ledger (balances.amounts_due) gives what each vendor
   is owed per currency: entries older than PAYOUT_HOLD_DAYS, less earlier payouts and
   those still under way; below PAYOUT_MIN_AMOUNT (negative included) nothing is paid and
   the balance carries over; a suspended vendor is not paid;
2. pay: each amount is capped at the connected account's Stripe available balance, the
   Payout row and its movement are committed BEFORE any Stripe call (key
   `payout-<movement id>`), then the movement is driven: its balance transaction is posted
   to the ledger (vendor:<id>:stripe_balance -> paid_out) when Stripe answers.
A dry run stores the run and its would-be payouts; it creates nothing on Stripe and posts
nothing. A payout whose outcome is unknown (timeout, 5xx, 429) stays pending and its
movement is retried by the worker's sweep under the same key, looked up at Stripe first
once the key may have expired, so no vendor is ever paid twice; the run goes on with the
others. A definite rejection marks that payout failed.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable, Iterable

from flask import current_app
from sqlalchemy import func, select

from marketplace import audit, stripe_gateway
from marketplace.database import utcnow
from marketplace.errors import AppError
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.engine import Kind, register
from marketplace.movements.models import OPEN, Movement
from marketplace.payouts import balances, ledger_entries
from marketplace.payouts.locking import run_lock
from marketplace.payouts.models import Payout, PayoutRun
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)
LOCKED = "another payout run is in progress"
Progress = Callable[[list], Iterable]


def now() -> datetime:
    """The run's clock (tests point it at the Stripe emulator's clock)."""
    return utcnow()


def execute(run_id: str, progress: Progress | None = None) -> PayoutRun:
    """Run a queued payout run to its end; fails fast when another run holds the lock."""
    with run_lock() as acquired:
        run = db.session.get(PayoutRun, run_id)
        if run.status not in ("queued",):
            db.session.rollback()
            return run
        if not acquired:
            return _finish(run, "failed", LOCKED)
        _interrupt_stale(run_id)
        run.status, run.started_at = "running", utcnow()
        db.session.commit()
        try:
            _pay_all(run, progress or (lambda items: items))
        except AppError as error:
            db.session.rollback()
            log.warning("payout run %s stopped: %s", run_id, error.code)
            return _finish(db.session.get(PayoutRun, run_id), "failed", f"{error.code}: {error.message}")
        return _finish(run, "completed")


def _finish(run: PayoutRun, status: str, error: str | None = None) -> PayoutRun:
    run.status, run.error, run.finished_at = status, error, utcnow()
    db.session.commit()
    return run


def _interrupt_stale(run_id: str) -> None:
    """Runs left `running` by a dead process (we hold the lock, so none is alive)."""
    for stale in db.session.scalars(select(PayoutRun).where(PayoutRun.status == "running", PayoutRun.id != run_id)):
        stale.status, stale.error, stale.finished_at = "failed", "interrupted", utcnow()


def _pay_all(run: PayoutRun, progress: Progress) -> None:
    cutoff = now() - timedelta(days=current_app.config["PAYOUT_HOLD_DAYS"])
    minimum = current_app.config["PAYOUT_MIN_AMOUNT"]
    in_flight = _in_flight()
    dues = [due for due in balances.amounts_due(cutoff, run.currency)
            if due.available - in_flight.get((due.vendor_id, due.currency), 0) >= minimum]
    accounts = _accounts({due.vendor_id for due in dues})  # suspended vendors are left out
    starts = _period_starts()
    db.session.commit()
    for due in progress(dues):
        account = accounts.get(due.vendor_id)
        if account is None:
            continue
        owed = due.available - in_flight.get((due.vendor_id, due.currency), 0)
        amount = min(owed, _stripe_available(account, due.currency))
        if amount < minimum:
            continue
        period_start = starts.get((due.vendor_id, due.currency))
        movement_id = _create_row(run, due, account, amount, period_start, cutoff)
        if movement_id:
            engine.drive_now([movement_id])


def _in_flight() -> dict[tuple[str, str], int]:
    """What is committed to leave each vendor's balance but is not on the ledger yet: payouts
    whose Stripe call is pending, and reversals planned (a refund's or a dispute's) not made."""
    out: dict[tuple[str, str], int] = {}
    payouts = select(Payout.vendor_id, Payout.currency, func.sum(Payout.amount)).where(
        Payout.dry_run.is_(False), Payout.status == "pending", Payout.stripe_payout_id.is_(None)
    ).group_by(Payout.vendor_id, Payout.currency)
    reversals = select(Movement.vendor_id, Movement.currency, func.sum(Movement.amount)).where(
        Movement.kind == "transfer_reversal", Movement.status.in_(OPEN + ("needs_attention",))
    ).group_by(Movement.vendor_id, Movement.currency)
    for stmt in (payouts, reversals):
        for vendor_id, currency, total in db.session.execute(stmt):
            out[(vendor_id, currency)] = out.get((vendor_id, currency), 0) + int(total)
    return out


def _accounts(vendor_ids: set[str]) -> dict[str, str]:
    if not vendor_ids:
        return {}
    rows = db.session.execute(select(Vendor.id, Vendor.stripe_account_id).where(
        Vendor.id.in_(vendor_ids), Vendor.stripe_account_id.is_not(None), Vendor.status != "suspended"))
    return dict(rows.all())


def _period_starts() -> dict[tuple[str, str], datetime]:
    """Each vendor's period starts where its last payout that went out ended."""
    rows = db.session.execute(
        select(Payout.vendor_id, Payout.currency, func.max(Payout.period_end))
        .where(Payout.dry_run.is_(False), Payout.status.not_in(("failed", "canceled")))
        .group_by(Payout.vendor_id, Payout.currency)
    )
    return {(vendor_id, currency): end for vendor_id, currency, end in rows}


def _stripe_available(account: str, currency: str) -> int:
    balance = stripe_gateway.retrieve_balance(account)
    return sum(int(item["amount"]) for item in balance.get("available") or [] if item["currency"] == currency)


def _create_row(run: PayoutRun, due, account: str, amount: int, start, end) -> str | None:
    """The payout row with its breakdown and its movement, committed before anything is sent
    to Stripe; returns the movement's id (None for a dry run)."""
    parts = balances.breakdown(due.vendor_id, due.currency, start, end)
    payout = Payout(run_id=run.id, vendor_id=due.vendor_id, dry_run=run.dry_run, stripe_account=account,
                    amount=amount, currency=due.currency, status="pending", period_start=start,
                    period_end=end, **parts)
    db.session.add(payout)
    run.payouts_created += 1
    run.total_amount += amount
    movement_id = None
    if not run.dry_run:
        db.session.flush()
        movement_id = engine.plan("payout", amount, due.currency, stripe_account=account, vendor_id=due.vendor_id,
                                  payout_id=payout.id).id
        audit.record("payout.created", "payout", payout.id, amount=amount, currency=due.currency)
    db.session.commit()
    return movement_id


# the payout movement ---------------------------------------------------------------------

def send_payout(m: Movement) -> dict:
    return stripe_gateway.create_payout(m.stripe_account, m.amount, m.currency, m.idempotency_key,
                                        metadata={"payout_id": m.payout_id, "vendor_id": m.vendor_id,
                                                  "movement_id": m.id})


def find_payout(m: Movement) -> dict | None:
    since = int((m.first_sent_at or m.created_at).timestamp()) - 3600
    for payout in stripe_gateway.list_payouts(m.stripe_account, since):
        if (payout.get("metadata") or {}).get("movement_id") == m.id:
            return payout
    return None


def record_payout(m: Movement, created: dict) -> None:
    payout = db.session.get(Payout, m.payout_id, with_for_update=True)
    if payout.stripe_payout_id is None:
        ledger_entries.record_created(payout, created)


def payout_refused(m: Movement, error: AppError) -> str:
    payout = db.session.get(Payout, m.payout_id, with_for_update=True)
    payout.status = "failed"
    payout.failure_code = (error.details or {}).get("stripe_code") or error.code
    return "failed"


def register_kinds() -> None:
    """Teach the movement engine payouts."""
    register("payout", Kind(send=send_payout, find=find_payout, record=record_payout, refused=payout_refused))
