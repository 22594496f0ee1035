"""`flask worker`: an RQ worker with RQ's scheduler, the outbox relay and cron-style jobs."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import click
from croniter import croniter
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import SimpleWorker

from marketplace import observability, outbox, queue, tasks
from marketplace.database import utcnow
from marketplace.extensions import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    cron: str  # five-field cron expression, UTC
    job: str  # a job named in marketplace.tasks


SCHEDULE: list[ScheduledJob] = [
    ScheduledJob("reap-idempotency-keys", "17 * * * *", tasks.REAP_IDEMPOTENCY_KEYS),
    # Yesterday (UTC) against Stripe, once the day's balance transactions are all listed.
    ScheduledJob("daily-reconciliation", "30 2 * * *", tasks.DAILY_RECONCILIATION),
    # Keep in step with marketplace.payouts.service.DAILY_RUN_CRON (next_payout_date).
    ScheduledJob("daily-payout-run", "0 6 * * *", tasks.DAILY_PAYOUT_RUN),
    # A payout run's shard whose worker was killed is taken over once its lease runs out.
    ScheduledJob("resume-payout-shards", "* * * * *", tasks.RESUME_PAYOUT_SHARDS),
    ScheduledJob("expire-unpaid-orders", "*/15 * * * *", tasks.EXPIRE_UNPAID_ORDERS),
    ScheduledJob("requeue-stalled-webhook-events", "*/10 * * * *", tasks.REQUEUE_STALLED_WEBHOOK_EVENTS),
    # Movements of money are driven from the database: a lost job only delays one.
    ScheduledJob("sweep-movements", "* * * * *", tasks.SWEEP_MOVEMENTS),
    # Asynchronous capture: a charge whose charge.updated never came is fetched again.
    ScheduledJob("book-unsettled-payments", "*/5 * * * *", tasks.BOOK_UNSETTLED_PAYMENTS),
    # Subscriptions whose creation's answer was lost, invoices whose event never came.
    ScheduledJob("sweep-subscriptions", "*/10 * * * *", tasks.SWEEP_SUBSCRIPTIONS),
]


# The advisory lock the outbox listener of one worker holds: that worker alone relays on NOTIFY.
RELAY_LEADER_KEY = 0x6F627831  # "obx1"
# How often a worker that is not the listener tries to become it (the leader's death frees the lock).
LEADER_RETRY_SECONDS = 2.0


class Ticker:
    """Relays the outbox every few seconds, and at once when woken; enqueues each cron slot once."""

    def __init__(self, app: Flask, schedule: list[ScheduledJob], started: datetime | None = None):
        self.app = app
        self.schedule = schedule
        self.last_tick = started or utcnow()
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.leading = threading.Event()  # set while this worker's listener holds RELAY_LEADER_KEY

    def tick(self, now: datetime) -> list[str]:
        """Relay the outbox; enqueue every slot due in (last_tick, now]. Returns job ids enqueued."""
        outbox.relay()
        return self.cron(now)

    def cron(self, now: datetime) -> list[str]:
        """Enqueue every slot due in (last_tick, now]; returns the job ids enqueued."""
        enqueued = []
        for entry in self.schedule:
            for slot in _slots(entry.cron, self.last_tick, now):
                job_id = f"cron-{entry.name}-{int(slot.timestamp())}"
                # Several workers may tick the same slot: the first to claim the key enqueues.
                if queue.get_redis().set(f"marketplace:{job_id}", "1", nx=True, ex=7 * 86400):
                    queue.enqueue(entry.job, [], {}, job_id=job_id)
                    enqueued.append(job_id)
        self.last_tick = now
        return enqueued

    def run(self) -> None:
        """Tick every OUTBOX_RELAY_INTERVAL; when woken (a NOTIFY) before that, relay only."""
        interval = self.app.config["OUTBOX_RELAY_INTERVAL"]
        due = time.monotonic() + interval
        while not self.stop.is_set():
            woken = self.wake.wait(max(due - time.monotonic(), 0))
            self.wake.clear()
            if self.stop.is_set():
                return
            periodic = time.monotonic() >= due
            if periodic:
                due = time.monotonic() + interval
            with self.app.app_context():
                try:
                    if periodic or not woken:
                        self.tick(utcnow())
                    else:
                        outbox.relay()
                except Exception:  # keep ticking; each failure is logged and retried next tick
                    log.exception("worker tick failed")
                    db.session.rollback()
                finally:
                    db.session.remove()

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()

    def listen(self) -> None:
        """PostgreSQL: wake the relay whenever a commit NOTIFYs outbox.NOTIFY_CHANNEL.

        Rows recorded by outbox.add_statement() (the webhook acknowledgement) are handed to
        no queue by the process that wrote them; this is what makes their jobs start within
        milliseconds instead of at the next periodic relay. One worker listens: the one whose
        connection holds the advisory lock RELAY_LEADER_KEY (one claim per commit, not one per
        worker racing for the same rows). The others try to take the lock every
        LEADER_RETRY_SECONDS; PostgreSQL frees it when the leader's connection ends, whatever
        killed it. A lost connection is retried; meanwhile every worker's periodic relay runs.
        """
        import psycopg

        with self.app.app_context():
            url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self.stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
                    while not self.stop.is_set() and not connection.execute(
                            "SELECT pg_try_advisory_lock(%s)", (RELAY_LEADER_KEY,)).fetchone()[0]:
                        self.stop.wait(LEADER_RETRY_SECONDS)
                    if self.stop.is_set():
                        return
                    connection.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                    self.leading.set()
                    self.wake.set()  # whatever committed before LISTEN took effect
                    while not self.stop.is_set():
                        for _ in connection.notifies(timeout=1.0):
                            self.wake.set()
            except psycopg.Error as exc:
                log.warning("outbox listener lost its connection (%s); retrying in 5 s", type(exc).__name__)
                self.stop.wait(5)
            finally:
                self.leading.clear()


class MeteredWorker(SimpleWorker):
    """RQ's SimpleWorker, counting and timing each job it runs (marketplace_jobs_total ...).

    With PROMETHEUS_MULTIPROC_DIR set those counts are written where the web's /metrics sums them.
    """

    metrics = None  # the app's observability.Metrics, set by worker_command

    def perform_job(self, job, queue) -> bool:
        started, succeeded = time.perf_counter(), False
        try:
            succeeded = super().perform_job(job, queue)
            return succeeded
        finally:
            if self.metrics is not None:
                # Bounded labels: a job not named in marketplace.tasks is counted as "other".
                name = job.func_name if tasks.is_task(job.func_name) else "other"
                self.metrics.observe_job(name, succeeded, time.perf_counter() - started)


def _slots(expr: str, after: datetime, until: datetime) -> list[datetime]:
    slots = []
    it = croniter(expr, after)
    while (slot := it.get_next(datetime)) <= until:
        slots.append(slot)
    return slots


def _die_with_parent() -> None:
    """In a process this worker forks (RQ's scheduler): end when the worker ends.

    A forked child holds copies of the worker's sockets, its database connections among them.
    Were the worker killed (-9, the OOM killer) in the middle of a transaction, a child that
    outlived it would keep that connection open, and PostgreSQL the transaction and its row
    locks, for as long as the child lives: every later job touching those rows would wait.
    Linux delivers SIGKILL to the child when its parent dies (PR_SET_PDEATHSIG).
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the worker died between the fork and the prctl
        os._exit(1)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Drain the queues and the outbox, then exit.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker with the scheduler, the outbox relay and scheduled jobs."""
    app = current_app._get_current_object()
    if queue.is_inline():
        raise click.ClickException("REDIS_URL is not set: jobs run inline, no worker is needed")
    observability.name_this_process("rq")  # before its first metric value: see name_this_process
    relayed = outbox.relay()
    click.echo(f"outbox: {relayed} message(s) handed to the queue")
    ticker = Ticker(app, SCHEDULE)
    if not burst:
        threading.Thread(target=ticker.run, name="ticker", daemon=True).start()
        if db.engine.dialect.name == "postgresql":
            threading.Thread(target=ticker.listen, name="outbox-listener", daemon=True).start()
    worker = MeteredWorker([queue.get_queue(n) for n in queue.QUEUE_NAMES], connection=queue.get_redis())
    worker.metrics = app.extensions["metrics"]
    os.register_at_fork(after_in_child=_die_with_parent)
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=app.config["LOG_LEVEL"])
    finally:
        ticker.shutdown()
