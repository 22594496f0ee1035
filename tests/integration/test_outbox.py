"""A job written in a rolled-back transaction never runs; a committed one always does."""
from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from marketplace import outbox, queue
from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.outbox import OutboxMessage
from marketplace.worker import worker_command
from tests import jobs_probe
from tests.jobs_probe import record


@pytest.fixture(autouse=True)
def _reset_probe():
    jobs_probe.CALLS.clear()
    jobs_probe.FAIL_TIMES.clear()
    yield
    jobs_probe.CALLS.clear()


def drain_rq():
    SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)


def count(**where):
    stmt = select(func.count()).select_from(OutboxMessage)
    for column, value in where.items():
        stmt = stmt.where(getattr(OutboxMessage, column).is_(None) if value is None else getattr(OutboxMessage, column) == value)
    return db.session.scalar(stmt)


def test_inline_rolled_back_job_never_runs(app):
    outbox.add(record, "rolled-back")
    db.session.rollback()
    assert outbox.relay_if_committed() == 0
    assert outbox.relay() == 0
    assert jobs_probe.CALLS == [] and count() == 0


def test_inline_committed_job_runs_after_commit(app):
    outbox.add(record, "committed")
    assert jobs_probe.CALLS == []  # not before the commit
    db.session.commit()
    assert outbox.relay_if_committed() == 1
    assert jobs_probe.CALLS == ["committed"]
    assert count(dispatched_at=None) == 0


def test_inline_job_runs_after_the_request_commits(app, client):
    @app.route("/probe/outbox", methods=["POST"])
    def probe():
        outbox.add(record, "from-request")
        db.session.commit()
        return {"ok": True}

    assert client.post("/probe/outbox").status_code == 200
    assert jobs_probe.CALLS == ["from-request"]


def test_inline_failure_is_recorded_retried_with_backoff_then_dead(app):
    app.config["OUTBOX_MAX_ATTEMPTS"] = 2
    jobs_probe.FAIL_TIMES["flaky"] = 5
    message = outbox.add(record, "flaky")
    db.session.commit()
    outbox.relay_if_committed()
    db.session.refresh(message)
    assert message.attempts == 1 and message.dispatched_at is None
    assert "planned failure" in message.last_error
    assert message.available_at > utcnow()
    assert outbox.relay() == 0  # not due yet: backoff holds it
    message.available_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    outbox.relay()
    db.session.refresh(message)
    assert message.attempts == 2 and message.dead_at is not None
    assert jobs_probe.CALLS == []


def test_rq_committed_job_runs_on_the_worker(redis_app):
    outbox.add(record, "via-redis")
    db.session.commit()
    assert outbox.relay_if_committed() == 1
    assert jobs_probe.CALLS == []  # enqueued, not run in-process
    assert queue.get_queue().count == 1
    drain_rq()
    assert jobs_probe.CALLS == ["via-redis"]


def test_rq_rolled_back_job_is_never_enqueued(redis_app):
    outbox.add(record, "never")
    db.session.rollback()
    outbox.relay_if_committed()
    outbox.relay()
    assert queue.get_queue().count == 0
    drain_rq()
    assert jobs_probe.CALLS == [] and count() == 0


def test_rq_job_survives_redis_being_down_at_commit(redis_app, redis_url):
    redis_app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    redis_app.extensions.pop("redis", None)
    message = outbox.add(record, "survivor")
    db.session.commit()  # the business change commits although Redis is down
    assert outbox.relay_if_committed() == 0
    db.session.refresh(message)
    assert message.dispatched_at is None and message.attempts == 1
    assert "ConnectionError" in message.last_error

    redis_app.config["REDIS_URL"] = redis_url  # Redis comes back
    redis_app.extensions.pop("redis", None)
    message.available_at = utcnow() - timedelta(seconds=1)  # the backoff has elapsed
    db.session.commit()
    assert outbox.relay() == 1
    drain_rq()
    assert jobs_probe.CALLS == ["survivor"]
    assert count(dispatched_at=None) == 0


def test_worker_burst_relays_what_a_crash_left_behind(redis_app):
    outbox.add(record, "left-behind")
    db.session.commit()
    db.session.info.pop(outbox._COMMITTED, None)  # the process died before its relay
    result = redis_app.test_cli_runner().invoke(worker_command, ["--burst"])
    assert result.exit_code == 0, result.output
    assert "1 message(s)" in result.output
    assert jobs_probe.CALLS == ["left-behind"]


def test_worker_refuses_to_start_without_redis(app):
    result = app.test_cli_runner().invoke(worker_command, ["--burst"])
    assert result.exit_code != 0 and "REDIS_URL" in result.output
