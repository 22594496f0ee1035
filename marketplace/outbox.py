"""Transactional outbox: jobs are recorded with the business change and handed off after commit.

`add()` writes a row in the caller's transaction. Once that transaction commits,
`relay()` hands committed rows to RQ (or runs them inline when REDIS_URL is unset)
and marks them. A crash or a Redis outage between commit and hand-off leaves the
row in place; the worker's periodic relay picks it up, so no job is ever lost and
none runs for a transaction that rolled back. Delivery is at least once: every job
is idempotent.

After a request's commit, `relay_if_committed()` hands over the rows that request
wrote, by id, without reading them back (the session remembers what it added), and
marks them in a short transaction that need not be durable: losing that mark in a
crash only makes the periodic relay enqueue the job again, which at-least-once
delivery already allows. The row itself is committed durably with the business change.

A row is done when its job has finished (`done_at`, marked by the job itself), not when it
was handed to Redis: a row handed off but not done STALE_AFTER later (its job vanished with
Redis' data, or its worker died, or RQ gave up) is handed off again, until
OUTBOX_MAX_ATTEMPTS hand-offs have been made (then it is dead, and visible).

A hot path can instead record its job inside one PostgreSQL statement (`add_statement()`):
nothing is handed off by the request, and a NOTIFY on NOTIFY_CHANNEL, sent when the
transaction commits, wakes the workers' relay at once (the periodic relay stays the net).
"""
from __future__ import annotations

import functools
import json
import logging
from datetime import datetime, timedelta
from typing import Any, Callable

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import JSON, Index, Integer, String, Text, TextClause, and_, bindparam, event, or_, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from marketplace import queue, tasks
from marketplace.database import UTCDateTime, created_at_column, id_column, new_id, utcnow
from marketplace.extensions import db

log = logging.getLogger(__name__)

# session.info keys: the (id, job, args, kwargs) of rows added in the open transaction,
# and of rows committed but not yet handed off by relay_if_committed().
_PENDING = "outbox_pending"
_COMMITTED = "outbox_committed"

# LISTENed to by `flask worker` (PostgreSQL): a committed add_statement() row is relayed at once.
NOTIFY_CHANNEL = "marketplace_outbox"


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The relay only ever scans undelivered rows: keep that index small.
        Index(
            "ix_outbox_messages_undelivered",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL AND dead_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL AND dead_at IS NULL"),
        ),
        # ... and the rows handed off whose job has not finished.
        Index(
            "ix_outbox_messages_unfinished",
            "dispatched_at",
            postgresql_where=text("dispatched_at IS NOT NULL AND done_at IS NULL AND dead_at IS NULL"),
            sqlite_where=text("dispatched_at IS NOT NULL AND done_at IS NULL AND dead_at IS NULL"),
        ),
    )

    id: Mapped[str] = id_column("obx")
    job: Mapped[str] = mapped_column(String(200), nullable=False)
    args: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    kwargs: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at_column()
    available_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


def job_path(task: str | Callable) -> str:
    """The importable dotted path RQ uses for a job: a name from `tasks`, or a function."""
    if isinstance(task, str):
        if not tasks.is_task(task):
            raise ValueError(f"{task!r} is not a job named in marketplace.tasks")
        return task
    return f"{task.__module__}.{task.__qualname__}"


def add(fn: str | Callable, *args: Any, **kwargs: Any) -> OutboxMessage:
    """Record a job in the current transaction; it is handed off only if that commits."""
    # The id is set here, not at flush, so the hand-off after commit needs no read-back.
    now = utcnow()
    message = OutboxMessage(id=new_id("obx"), job=job_path(fn), args=list(args), kwargs=dict(kwargs),
                            created_at=now, available_at=now)
    db.session.add(message)
    db.session.info.setdefault(_PENDING, []).append((message.id, message.job, message.args, message.kwargs))
    return message


def add_later(delay: timedelta, fn: str | Callable, *args: Any, **kwargs: Any) -> OutboxMessage:
    """Record a job in the current transaction, due `delay` after now.

    Nothing is handed off after the commit: the periodic relay takes the row once it is
    due. The wait is kept in the database, so a restart of Redis or of every worker
    loses no scheduled job.
    """
    now = utcnow()
    message = OutboxMessage(id=new_id("obx"), job=job_path(fn), args=list(args), kwargs=dict(kwargs),
                            created_at=now, available_at=now + delay)
    db.session.add(message)
    return message


def add_statement(fn: str | Callable, *args: Any, when: str) -> tuple[TextClause, dict[str, Any]]:
    """One PostgreSQL statement recording the job `fn(*args)` for each row that `when` returns.

    `when` is the SQL of a data-modifying statement with RETURNING, typically
    `INSERT ... ON CONFLICT DO NOTHING RETURNING id`, so the job exists exactly when the
    insert happened. Run the returned (statement, params) in the caller's transaction,
    adding the parameters of `when`: the row commits with it, and the NOTIFY (transactional
    too) wakes the workers' relay only then. Nothing is handed off by this process. The
    result has one row per job recorded. Text SQL, built once per `when`: this is for hot
    paths, where building and caching a Core statement per call costs more than the insert.
    """
    now = utcnow()
    return _statement_after(when), {
        "outbox_id": new_id("obx"), "outbox_job": job_path(fn), "outbox_args": json.dumps(list(args)),
        "outbox_now": now,
    }


@functools.cache
def _statement_after(when: str) -> TextClause:
    return text(
        f"WITH source AS ({when}), recorded AS ("
        " INSERT INTO outbox_messages (id, job, args, kwargs, created_at, available_at, attempts)"
        " SELECT :outbox_id, :outbox_job, CAST(:outbox_args AS JSON), CAST('{}' AS JSON), :outbox_now, :outbox_now, 0"
        " FROM source RETURNING id)"
        f" SELECT pg_notify('{NOTIFY_CHANNEL}', id) FROM recorded"
    ).bindparams(bindparam("outbox_now", type_=UTCDateTime()))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if pending := session.info.pop(_PENDING, None):
        session.info.setdefault(_COMMITTED, []).extend(pending)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction) -> None:
    session.info.pop(_PENDING, None)


def relay_if_committed() -> int:
    """Hand off the outbox rows the session committed since the last call; returns how many.
    A request that never opened a session (a webhook's acknowledgement) does not get one here."""
    if not db.session.registry.has():
        return 0
    committed = db.session.info.pop(_COMMITTED, None)
    if not committed:
        return 0
    try:
        if queue.is_inline():
            return relay()
        return _relay_committed(committed)
    except Exception:  # the periodic relay retries; the business change is already committed
        log.exception("outbox relay after commit failed; the worker will retry")
        db.session.rollback()
        return 0


# Built once: this runs after every request that wrote outbox rows.
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
_MARK_DISPATCHED = text(
    "UPDATE outbox_messages SET dispatched_at = :now, attempts = attempts + 1, last_error = NULL"
    " WHERE id IN :ids AND dispatched_at IS NULL"
).bindparams(bindparam("ids", expanding=True), bindparam("now", type_=UTCDateTime()))


def _relay_committed(committed: list[tuple[str, str, list, dict]]) -> int:
    """Enqueue rows this session just committed, then mark them dispatched.

    Unlike relay(), no SELECT ... FOR UPDATE: the rows are known from the session, and
    the worker's periodic relay only takes them if this mark is late or lost, which
    enqueues the same job id again (at least once, as documented above).
    """
    handed: list[str] = []
    for message_id, job, args, kwargs in committed:
        try:
            queue.enqueue(job, args, kwargs, job_id=f"outbox-{message_id}")
        except RedisError as exc:
            # Redis is down: record the attempt (backoff) durably; the periodic relay retries.
            message = db.session.get(OutboxMessage, message_id, with_for_update=True)
            if message is not None and message.dispatched_at is None:
                message.attempts += 1
                _record_failure(message, exc)
            break
        handed.append(message_id)
    if handed:
        if db.session.get_bind().dialect.name == "postgresql":
            # Not worth waiting for the WAL flush: a lost mark only means one more enqueue.
            db.session.execute(_ASYNC_COMMIT)
        db.session.execute(_MARK_DISPATCHED, {"ids": handed, "now": utcnow()})
    db.session.commit()
    return len(handed)


# A handed-off job that has not finished this long after is handed off again (longer than
# any job may run: RQ stops one at JOB_TIMEOUT_SECONDS).
STALE_AFTER = timedelta(seconds=queue.JOB_TIMEOUT_SECONDS + 300)


def mark_done(message_id: str) -> None:
    """The job of an outbox row finished: the row is done (called by the job wrapper)."""
    db.session.execute(
        OutboxMessage.__table__.update().where(OutboxMessage.id == message_id, OutboxMessage.done_at.is_(None))
        .values(done_at=utcnow()))
    db.session.commit()


def relay(limit: int = 100) -> int:
    """Hand every due, committed message to the queue (and again every one handed off whose
    job never finished); returns how many were handed off."""
    if queue.is_inline():
        return _relay_inline()
    handed = 0
    while True:
        batch = _claim(limit)
        for message in batch:
            if not _enqueue(message):
                break  # Redis is down: keep the rest for the next relay
            handed += 1
        else:
            db.session.commit()
            if len(batch) == limit:
                continue
            db.session.info.pop(_COMMITTED, None)
            return handed
        db.session.commit()
        return handed


def _relay_inline() -> int:
    """Run due messages one at a time; inline jobs may add rows as they go."""
    ran = 0
    while batch := _claim(1):
        message = batch[0]
        message.attempts += 1
        message.dispatched_at = utcnow()
        db.session.commit()  # the job runs in transactions of its own
        try:
            queue.run_inline(message.job, message.args, message.kwargs)
            ran += 1
            mark_done(message.id)
        except Exception as exc:  # recorded on the row and retried with backoff, never dropped
            db.session.rollback()
            _record_failure(db.session.get(OutboxMessage, message.id), exc)
            db.session.commit()
    db.session.info.pop(_COMMITTED, None)
    return ran


def _claim(limit: int) -> list[OutboxMessage]:
    now = utcnow()
    due = (
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None), OutboxMessage.dead_at.is_(None))
        # A fresh row is due whatever the clocks say; a delayed one (add_later) or a retried
        # one only once its time has come.
        .where(or_(OutboxMessage.available_at <= now,
                   and_(OutboxMessage.attempts == 0, OutboxMessage.available_at <= OutboxMessage.created_at)))
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    batch = list(db.session.scalars(due))
    if len(batch) < limit:
        stale = (
            select(OutboxMessage)
            .where(OutboxMessage.dispatched_at < now - STALE_AFTER, OutboxMessage.done_at.is_(None),
                   OutboxMessage.dead_at.is_(None))
            .order_by(OutboxMessage.dispatched_at, OutboxMessage.id)
            .limit(limit - len(batch))
            .with_for_update(skip_locked=True)
        )
        for message in db.session.scalars(stale):
            if message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
                message.dead_at = now
                message.last_error = "its job never finished"
                log.error("outbox message %s (%s) is dead: its job never finished", message.id, message.job)
            else:
                batch.append(message)
    return batch


def _enqueue(message: OutboxMessage) -> bool:
    message.attempts += 1
    try:
        queue.enqueue(message.job, message.args, message.kwargs, job_id=f"outbox-{message.id}")
    except RedisError as exc:
        _record_failure(message, exc)
        return False
    message.dispatched_at = utcnow()
    message.last_error = None
    return True


def _record_failure(message: OutboxMessage, exc: Exception) -> None:
    log.warning("outbox message %s (%s) failed: %s", message.id, message.job, type(exc).__name__)
    message.dispatched_at = None
    message.last_error = f"{type(exc).__name__}: {exc}"[:1000]
    if message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
        message.dead_at = utcnow()
    else:
        message.available_at = utcnow() + timedelta(seconds=min(2 ** message.attempts, 600))
