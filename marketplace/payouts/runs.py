"""Payout runs: per vendor and currency, pay out what the ledger says is due.

Steps of a run (one at a time, see locking.py):
1. plan, under the run lock: ONE grouped query over the ledger (balances.amounts_due) gives
   what each vendor is owed per currency: entries older than PAYOUT_HOLD_DAYS, less earlier
   payouts and those still under way; below PAYOUT_MIN_AMOUNT (negative included) nothing
   is paid and the balance carries over; a suspended vendor is not paid. The vendors owed
   are cut into shards of PAYOUT_SHARD_SIZE, committed with the run `running`: from then on
   no other run starts until every shard has ended (the lock alone would not say so: it
   is released once the shards are planned);
2. pay, shard by shard, by every RQ worker (a job per shard) and the process that started
   the run, each claiming one shard at a time under a lease and paying PAYOUT_CONCURRENCY
   vendors of it at once: each amount is capped at the connected account's Stripe
   available balance, the Payout row and its movement are committed BEFORE any Stripe call
   (key `payout-<movement id>`), then the movement is driven: its balance transaction is
   posted to the ledger (vendor:<id>:stripe_balance -> paid_out) when Stripe answers. Every
   process paces its Stripe calls through one shared window below Stripe's rate limit
   (stripe_gateway.Pace), and a call Stripe still refuses for the rate is tried again.
   A worker killed while it works a shard leaves it `running` with a lease that runs out:
   the process waiting for the run, or the sweep (`resume_shards`, every minute), takes it
   over, skipping the vendors already paid: one payout per vendor, currency and run is a
   unique index, so two holders of one shard (a lease that ran out on a live worker)
   cannot both pay a vendor. The last shard to end ends the run.
A dry run stores the run and its would-be payouts; it creates nothing on Stripe and posts
nothing. A payout whose outcome is unknown (timeout, 5xx, 429) stays pending and its
movement is retried by the worker's sweep under the same key, looked up at Stripe first
once the key may have expired, so no vendor is ever paid twice; the run goes on with the
others. A definite rejection marks that payout failed.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from marketplace import audit, outbox, queue, stripe_gateway, tasks
from marketplace.database import isoformat, utcnow
from marketplace.errors import AppError, ServiceUnavailable
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.engine import Kind, register
from marketplace.movements.models import OPEN, REVERSAL_KINDS, Movement
from marketplace.payouts import balances, ledger_entries
from marketplace.payouts.locking import run_lock
from marketplace.payouts.models import Payout, PayoutRun, PayoutRunShard
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)
LOCKED = "another payout run is in progress"
# progress(vendors done, vendors in the run), called as shards end (the CLI's progress bar).
Progress = Callable[[int, int], None]
# A shard's holder renews its lease every quarter of it (a thread of its own); one silent this
# long (killed) is taken over.
SHARD_LEASE = timedelta(seconds=60)
SHARD_MAX_ATTEMPTS = 5
# Waits before asking Stripe again after it refused a call for the rate (its 429s say nothing
# was done; with the shared pace they are rare).
RATE_LIMIT_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)
# Errors after which the outcome for a vendor may differ on a later attempt.
TRANSIENT = (ServiceUnavailable, stripe_gateway.RateLimited, stripe_gateway.StripeInFlight)


def now() -> datetime:
    """The run's clock (tests point it at the Stripe emulator's clock)."""
    return utcnow()


def execute(run_id: str, progress: Progress | None = None, wait_for_end: bool = True) -> PayoutRun:
    """Plan a queued payout run and work its shards here (beside the workers); with
    `wait_for_end`, until the run has ended. Fails fast when another run is under way."""
    with run_lock() as acquired:
        run = db.session.get(PayoutRun, run_id)
        if run.status != "queued":  # under way (a job delivered twice, a resumed run) or ended
            status = run.status
            db.session.rollback()
            return work(run_id, progress, until_ended=wait_for_end) if status == "running" else run
        if not acquired or under_way(run_id):
            return _refuse(run_id)
        try:
            _plan(run)
        except AppError as error:
            db.session.rollback()
            log.warning("payout run %s stopped: %s", run_id, error.code)
            return _finish(db.session.get(PayoutRun, run_id), "failed", f"{error.code}: {error.message}")
    outbox.relay_if_committed()  # the workers start on the shards now, not after this job
    return work(run_id, progress, until_ended=wait_for_end)


def _finish(run: PayoutRun, status: str, error: str | None = None) -> PayoutRun:
    run.status, run.error, run.finished_at = status, error, utcnow()
    db.session.commit()
    return run


def _refuse(run_id: str) -> PayoutRun:
    """Another run is under way: this one fails, if it is still only queued. (A second
    delivery of the job of a run being planned right now must not mark that run failed:
    its shards would go on paying while a third run could start.)"""
    db.session.rollback()
    db.session.execute(update(PayoutRun).where(PayoutRun.id == run_id, PayoutRun.status == "queued")
                       .values(status="failed", error=LOCKED, finished_at=utcnow())
                       .execution_options(synchronize_session=False))
    db.session.commit()
    return db.session.get(PayoutRun, run_id, populate_existing=True)


def under_way(run_id: str | None = None) -> str | None:
    """The run (other than `run_id`) with a shard still to end, whatever its own status says;
    None when there is none."""
    stmt = select(PayoutRunShard.run_id).where(PayoutRunShard.status.in_(("queued", "running")))
    if run_id is not None:
        stmt = stmt.where(PayoutRunShard.run_id != run_id)
    return db.session.scalar(stmt.limit(1))


def _plan(run: PayoutRun) -> None:
    """Cut what is owed into shards, committed with the run `running` (and a job per shard
    when there are workers)."""
    config = current_app.config
    cutoff = now() - timedelta(days=config["PAYOUT_HOLD_DAYS"])
    minimum = config["PAYOUT_MIN_AMOUNT"]
    in_flight = _in_flight()
    dues = [due for due in balances.amounts_due(cutoff, run.currency)
            if due.available - in_flight.get((due.vendor_id, due.currency), 0) >= minimum]
    accounts = _accounts({due.vendor_id for due in dues})  # suspended vendors are left out
    starts = _period_starts()
    items = [[due.vendor_id, due.currency, due.available - in_flight.get((due.vendor_id, due.currency), 0),
              accounts[due.vendor_id], isoformat(starts.get((due.vendor_id, due.currency)))]
             for due in dues if due.vendor_id in accounts]
    size = config["PAYOUT_SHARD_SIZE"]
    shards = [PayoutRunShard(run_id=run.id, position=n, dues=items[i:i + size], status="queued", attempts=0,
                             payouts_created=0, total_amount=0)
              for n, i in enumerate(range(0, len(items), size))]
    db.session.add_all(shards)
    run.status, run.started_at, run.cutoff = "running", utcnow(), cutoff
    run.vendors_total, run.shards_total, run.shards_done = len(items), len(shards), 0
    if not shards:
        run.status, run.finished_at = "completed", utcnow()
    db.session.flush()
    if not queue.is_inline():
        for shard in shards:
            outbox.add(tasks.RUN_PAYOUT_SHARD, shard.id)
    db.session.commit()


def work(run_id: str, progress: Progress | None = None, until_ended: bool = True) -> PayoutRun:
    """Work the run's shards that nobody holds (or whose holder went silent), one at a time;
    with `until_ended`, wait for the others' too, taking over any whose lease runs out."""
    while True:
        shard_id = _claim(run_id=run_id)
        if shard_id is not None:
            _work(shard_id)
        run = db.session.get(PayoutRun, run_id, populate_existing=True)
        status, done, total = run.status, _vendors_done(run), run.vendors_total
        db.session.commit()
        if progress is not None:
            progress(done, total)
        if status != "running" or (shard_id is None and not until_ended):
            return db.session.get(PayoutRun, run_id)
        if shard_id is None:
            time.sleep(0.2)


def _vendors_done(run: PayoutRun) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(func.json_array_length(PayoutRunShard.dues)), 0))
                                 .where(PayoutRunShard.run_id == run.id,
                                        PayoutRunShard.status.in_(("done", "failed")))) or 0)


def run_shard(shard_id: str) -> str:
    """The job of one shard: work it if nobody holds it; returns its status."""
    if _claim(shard_id=shard_id) is not None:
        _work(shard_id)
    status = db.session.scalar(select(PayoutRunShard.status).where(PayoutRunShard.id == shard_id))
    db.session.rollback()
    return status or "missing"


def resume_shards() -> int:
    """Ask a job again for every shard whose holder went silent (the sweep); how many."""
    expired = list(db.session.scalars(select(PayoutRunShard.id).where(
        PayoutRunShard.status == "running", PayoutRunShard.locked_until < utcnow())))
    for shard_id in expired:
        outbox.add(tasks.RUN_PAYOUT_SHARD, shard_id)
    db.session.commit()
    return len(expired)


def _claim(run_id: str | None = None, shard_id: str | None = None) -> str | None:
    """Lease a shard nobody holds (this one, or the run's next); None when there is none.
    One whose attempts ran out ends `failed` instead (its vendors are the next run's)."""
    current = utcnow()
    stmt = select(PayoutRunShard).where(or_(
        PayoutRunShard.status == "queued",
        and_(PayoutRunShard.status == "running", PayoutRunShard.locked_until < current)))
    stmt = stmt.where(PayoutRunShard.id == shard_id) if shard_id else stmt.where(PayoutRunShard.run_id == run_id)
    while True:
        shard = db.session.scalar(stmt.order_by(PayoutRunShard.position).limit(1)
                                  .with_for_update(skip_locked=True))
        if shard is None:
            db.session.rollback()
            return None
        if shard.attempts >= SHARD_MAX_ATTEMPTS:
            _end(shard, "failed", shard.error or "its holders went silent")
            db.session.commit()
            continue
        shard.status, shard.attempts, shard.locked_until = "running", shard.attempts + 1, current + SHARD_LEASE
        db.session.commit()
        return shard.id


def _holds(shard_id: str, attempt: int) -> bool:
    """This attempt still holds its shard; the row stays share-locked to the end of the
    caller's transaction, so the shard cannot end (or change hands) before its payout row
    is committed, and a run planned after it ended sees that payout."""
    return db.session.scalar(
        select(PayoutRunShard.id).where(PayoutRunShard.id == shard_id, PayoutRunShard.status == "running",
                                        PayoutRunShard.attempts == attempt)
        .with_for_update(read=True)) is not None


def _renew(shard_id: str, attempt: int) -> bool:
    """Extend the lease; False when another holder has taken the shard over."""
    renewed = db.session.execute(
        update(PayoutRunShard).where(PayoutRunShard.id == shard_id, PayoutRunShard.status == "running",
                                     PayoutRunShard.attempts == attempt)
        .values(locked_until=utcnow() + SHARD_LEASE).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(renewed)


def _work(shard_id: str) -> None:
    """Pay the shard's vendors not paid yet by this run, PAYOUT_CONCURRENCY at a time."""
    shard = db.session.get(PayoutRunShard, shard_id, populate_existing=True)
    run = db.session.get(PayoutRun, shard.run_id)
    attempt, items, run_id, dry_run, cutoff = shard.attempts, list(shard.dues), run.id, run.dry_run, run.cutoff
    paid = set(db.session.execute(select(Payout.vendor_id, Payout.currency).where(
        Payout.run_id == run_id, Payout.vendor_id.in_({item[0] for item in items}))).all())
    db.session.commit()
    todo = [item for item in items if (item[0], item[1]) not in paid]
    app = current_app._get_current_object()
    concurrency = app.config["PAYOUT_CONCURRENCY"] if db.engine.dialect.name == "postgresql" else 1
    error: str | None = None

    def pay(item: list) -> None:
        with app.app_context():
            try:
                _pay_one(run_id, dry_run, cutoff, item, shard_id, attempt)
            except AppError as error:
                if isinstance(error, TRANSIENT):
                    raise  # the attempt stops; the next one pays this vendor
                # A definite refusal for this vendor (its account, its permissions): the others
                # are paid; the next run tries it again.
                log.error("payout run %s: vendor %s not paid: %s: %s", run_id, item[0], error.code, error.message)
            finally:
                db.session.remove()

    done, lost = threading.Event(), threading.Event()

    def heartbeat() -> None:
        """Renew the lease while this attempt is alive, whatever its calls wait for (a vendor's
        call may take STRIPE_TIMEOUT_SECONDS times its retries): only a dead holder loses it."""
        with app.app_context():
            try:
                while not done.wait(SHARD_LEASE.total_seconds() / 4):
                    try:
                        renewed = _renew(shard_id, attempt)
                    except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                        db.session.rollback()
                        log.warning("payout shard %s: renewing its lease failed", shard_id, exc_info=True)
                        continue
                    if not renewed:
                        lost.set()  # taken over: stop sending; the new holder skips what this one paid
                        return
            finally:
                db.session.remove()

    beat = threading.Thread(target=heartbeat, name="payout-shard-lease", daemon=True)
    beat.start()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="payout") as pool:
            pending = set()
            items_left = iter(todo)
            try:
                while not lost.is_set():
                    while len(pending) < concurrency * 2 and (item := next(items_left, None)) is not None:
                        pending.add(pool.submit(pay, item))
                    if not pending:
                        break
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        if future.exception() is not None and error is None:
                            failure = future.exception()
                            error = (f"{failure.code}: {failure.message}" if isinstance(failure, AppError)
                                     else f"{type(failure).__name__}")[:500]
                            log.error("payout run %s shard %s: %s", run_id, shard_id, error, exc_info=failure)
                    if error is not None:
                        break  # what this attempt could not pay is the next attempt's
            finally:  # the vendors not started are the next attempt's; those under way finish
                for future in pending:
                    future.cancel()
    except BaseException as interrupted:  # the job's timeout, a signal: the lease must not outlive this
        done.set()
        beat.join()
        db.session.rollback()
        _settle(shard_id, attempt, f"interrupted: {type(interrupted).__name__}")
        raise
    done.set()
    beat.join()
    _settle(shard_id, attempt, error)


def _settle(shard_id: str, attempt: int, error: str | None) -> None:
    """The attempt ended: the shard is done, or back in the queue with its error."""
    shard = db.session.get(PayoutRunShard, shard_id, with_for_update=True, populate_existing=True)
    if shard.status != "running" or shard.attempts != attempt:  # taken over meanwhile: the new holder ends it
        db.session.rollback()
        return
    if error is not None:  # back in the queue and its next job asked for, in one commit
        shard.status, shard.error, shard.locked_until = "queued", error, None
        if not queue.is_inline():
            outbox.add_later(timedelta(seconds=10 * shard.attempts), tasks.RUN_PAYOUT_SHARD, shard.id)
        db.session.commit()
        return
    _end(shard, "done", None)
    db.session.commit()


def _end(shard: PayoutRunShard, status: str, error: str | None) -> None:
    """The shard has ended: its totals are its payouts'; the last one to end ends the run."""
    count, total = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Payout.amount), 0)).where(
            Payout.run_id == shard.run_id,
            tuple_(Payout.vendor_id, Payout.currency).in_([(item[0], item[1]) for item in shard.dues]))).one()
    shard.status, shard.error, shard.locked_until, shard.finished_at = status, error, None, utcnow()
    shard.payouts_created, shard.total_amount = int(count), int(total)
    run = db.session.get(PayoutRun, shard.run_id, with_for_update=True, populate_existing=True)
    run.shards_done += 1
    run.payouts_created += shard.payouts_created
    run.total_amount += shard.total_amount
    if run.shards_done >= run.shards_total:
        failed = db.session.scalar(select(func.count()).where(
            PayoutRunShard.run_id == run.id, PayoutRunShard.status == "failed", PayoutRunShard.id != shard.id))
        failed += status == "failed"
        run.status = "failed" if failed else "completed"
        run.error = f"{failed} of {run.shards_total} shard(s) failed: run it again to pay the rest" if failed else None
        run.finished_at = utcnow()


def _pay_one(run_id: str, dry_run: bool, cutoff: datetime, item: list, shard_id: str | None = None,
             attempt: int | None = None) -> None:
    """One vendor's payout in one currency: capped at its Stripe available balance, the row
    and its movement committed before the payout is sent (only while this attempt still
    holds its shard)."""
    vendor_id, currency, owed, account, start = item
    amount = min(owed, _paced(lambda: _stripe_available(account, currency)))
    if amount < current_app.config["PAYOUT_MIN_AMOUNT"]:
        return
    movement = _create_row(run_id, dry_run, vendor_id, currency, account, amount,
                           datetime.fromisoformat(start) if start else None, cutoff, shard_id, attempt)
    if movement is not None:
        _send(movement)


def _paced(call: Callable):
    """A read Stripe may refuse for the rate (or not answer): asked again after a pause."""
    for pause in (*RATE_LIMIT_PAUSES, None):
        try:
            return call()
        except (stripe_gateway.RateLimited, ServiceUnavailable):
            if pause is None:
                raise
            time.sleep(pause)


def _send(movement: Movement) -> None:
    """Send the payout (claimed when planned); one Stripe refused for the rate is tried
    again after a pause (under the same key, looked up first: its outcome is unknown to the
    engine). Any other end is the engine's, and the sweep's."""
    try:
        status = engine.attempt(movement)
    except Exception:  # noqa: BLE001 - recorded as unknown by the engine; the sweep finishes it
        db.session.rollback()
        log.exception("payout movement %s: recording failed; the sweep will finish it", movement.id)
        return
    for pause in RATE_LIMIT_PAUSES:
        if status != "unknown":
            return
        error = db.session.scalar(select(Movement.last_error).where(Movement.id == movement.id))
        db.session.rollback()
        if not (error or "").startswith(stripe_gateway.RateLimited.code):
            return
        time.sleep(pause)
        engine.wake([movement.id])
        status = engine.status_of(movement.id)


def _in_flight() -> dict[tuple[str, str], int]:
    """What is committed to leave each vendor's balance but is not on the ledger yet: payouts
    whose Stripe call is pending, and reversals planned (a refund's, a dispute's, a fee
    collection's) not made."""
    out: dict[tuple[str, str], int] = {}
    payouts = select(Payout.vendor_id, Payout.currency, func.sum(Payout.amount)).where(
        Payout.dry_run.is_(False), Payout.status == "pending", Payout.stripe_payout_id.is_(None)
    ).group_by(Payout.vendor_id, Payout.currency)
    reversals = select(Movement.vendor_id, Movement.currency, func.sum(Movement.amount)).where(
        Movement.kind.in_(REVERSAL_KINDS), Movement.status.in_(OPEN + ("needs_attention",))
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


def _create_row(run_id: str, dry_run: bool, vendor_id: str, currency: str, account: str, amount: int,
                start: datetime | None, end: datetime, shard_id: str | None = None,
                attempt: int | None = None) -> Movement | None:
    """The payout row with its breakdown and its movement (claimed: sent at once by the
    caller), committed before anything is sent to Stripe; returns the movement (None for a
    dry run, or when this run has paid the vendor already: another holder of the shard did)."""
    if shard_id is not None and not _holds(shard_id, attempt):
        db.session.rollback()  # taken over (this holder was thought dead) or ended: not ours to pay
        return None
    parts = balances.breakdown(vendor_id, currency, start, end)
    payout = Payout(run_id=run_id, vendor_id=vendor_id, dry_run=dry_run, stripe_account=account,
                    amount=amount, currency=currency, status="pending", period_start=start,
                    period_end=end, **parts)
    db.session.add(payout)
    try:
        db.session.flush()
    except IntegrityError as error:
        db.session.rollback()
        if "uq_payouts_run_vendor_currency" not in str(error.orig) and "payouts.run_id" not in str(error.orig):
            raise
        log.info("payout run %s: vendor %s (%s) already paid by this run", run_id, vendor_id, currency)
        return None
    movement = None
    if not dry_run:  # sent here at once; the sweep sends it if this process dies first
        movement = engine.plan_claimed("payout", amount, currency, stripe_account=account,
                                       vendor_id=vendor_id, payout_id=payout.id, params={})
        audit.record("payout.created", "payout", payout.id, amount=amount, currency=currency)
    db.session.commit()
    return movement


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
    register("payout", Kind(send=send_payout, find=find_payout, record=record_payout, refused=payout_refused,
                            prerequisite=False))
