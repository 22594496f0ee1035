"""Processing by job: dispatch, ignored types, failures with backoff, give-up, replay, admin list."""
import threading
from datetime import timedelta

import pytest
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from marketplace import outbox, queue
from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.outbox import OutboxMessage
from marketplace.webhooks import handlers, service
from marketplace.webhooks.models import WebhookEvent
from marketplace.worker import Ticker
from tests.webhook_helpers import deliver, event

FAILURES: dict[str, int] = {}
CALLS: list[str] = []


def flaky(event_: dict) -> None:
    """Fails while FAILURES says so, leaking would-be secrets into its message."""
    if FAILURES.get(event_["id"], 0) > 0:
        FAILURES[event_["id"]] -= 1
        raise RuntimeError("boom with sk_test_abc123 and whsec_s3cr3t and postgresql://u:pw@db/x")
    CALLS.append(event_["id"])


@pytest.fixture(autouse=True)
def _flaky_type(monkeypatch):
    monkeypatch.setitem(handlers.HANDLERS, "test.flaky", flaky)
    FAILURES.clear()
    CALLS.clear()


def row_for(payload) -> WebhookEvent:
    db.session.rollback()
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == payload["id"]))


def make_due() -> None:
    db.session.rollback()
    for message in db.session.scalars(select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))):
        message.available_at = utcnow() - timedelta(seconds=1)
    db.session.commit()


def test_a_handled_event_is_processed_once(client):
    payload = event("test.flaky")
    deliver(client, payload)
    deliver(client, payload)
    row = row_for(payload)
    assert (row.status, row.attempts, row.last_error) == ("processed", 1, None)
    assert row.processed_at is not None and CALLS == [payload["id"]]


def pending_retries(payload) -> list[OutboxMessage]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.job == "jobs.webhooks.process_event_job", OutboxMessage.dispatched_at.is_(None))))


def test_failure_is_recorded_retried_with_backoff_then_processed(client):
    payload = event("test.flaky")
    FAILURES[payload["id"]] = 2
    assert deliver(client, payload).status_code == 200  # the answer does not wait for success
    row = row_for(payload)
    assert (row.status, row.attempts) == ("received", 1)
    assert row.last_error.startswith("RuntimeError: boom")
    for secret in ("sk_test_abc123", "whsec_s3cr3t", ":pw@"):
        assert secret not in row.last_error
    [retry] = pending_retries(payload)  # the retry waits in the database, not in a queue
    first_delay = retry.available_at - utcnow()
    assert timedelta(seconds=8) < first_delay <= timedelta(seconds=10)
    assert row.next_attempt_at == retry.available_at and row.locked_until is None
    assert outbox.relay() == 0 and row_for(payload).attempts == 1  # not due yet: backoff holds it
    make_due()
    outbox.relay()
    [retry] = pending_retries(payload)
    assert retry.available_at - utcnow() > first_delay * 4  # the delay grows
    make_due()
    outbox.relay()
    row = row_for(payload)
    assert (row.status, row.attempts, row.last_error, row.next_attempt_at) == ("processed", 3, None, None)
    assert CALLS == [payload["id"]] and pending_retries(payload) == []


def test_the_backoff_grows_to_a_ceiling():
    delays = [service.retry_delay(n).total_seconds() for n in range(1, 9)]
    assert delays[:5] == [10, 50, 250, 1250, 6250] and delays[5:] == [6 * 3600] * 3


def test_gives_up_after_the_limit_then_replay_processes_it(app, client, auth):
    app.config["WEBHOOK_MAX_ATTEMPTS"] = 2
    payload = event("test.flaky")
    FAILURES[payload["id"]] = 10
    deliver(client, payload)
    make_due()
    outbox.relay()
    row = row_for(payload)
    assert (row.status, row.attempts) == ("failed", 2) and "boom" in row.last_error
    make_due()
    assert outbox.relay() == 0 and row_for(payload).attempts == 2  # nothing further queued

    FAILURES[payload["id"]] = 0
    admin = auth.headers("admin")
    response = client.post(f"/api/admin/webhook-events/{row.id}/replay", headers=admin)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["id"] == row.id
    row = row_for(payload)
    assert (row.status, row.attempts, row.last_error) == ("processed", 1, None)
    assert CALLS == [payload["id"]]


def test_replay_of_an_unknown_event_is_404_and_admin_only(client, auth):
    admin = auth.headers("admin")
    assert client.post("/api/admin/webhook-events/whe_nope/replay", headers=admin).status_code == 404
    assert client.post("/api/admin/webhook-events/whe_nope/replay", headers=auth.headers("vendor")).status_code == 403
    assert client.post("/api/admin/webhook-events/whe_nope/replay").status_code == 401
    assert client.get("/api/admin/webhook-events", headers=auth.headers("shopper")).status_code == 403


def test_admin_list_filters_and_paginates(client, auth):
    FAILURES.clear()
    processed = [event("test.flaky") for _ in range(3)]
    ignored = event("customer.created", account="acct_77")
    for payload in [*processed, ignored]:
        deliver(client, payload)
    admin = auth.headers("admin")
    body = client.get("/api/admin/webhook-events?per_page=2", headers=admin).get_json()
    assert body["pagination"] == {"page": 1, "per_page": 2, "total_items": 4, "total_pages": 2}
    first = body["data"][0]
    assert list(first)[:8] == ["id", "stripe_event_id", "type", "account", "status", "attempts", "last_error", "received_at"]
    assert first["stripe_event_id"] == ignored["id"] and first["account"] == "acct_77"
    assert first["received_at"].endswith("Z")
    only = client.get("/api/admin/webhook-events?status=ignored", headers=admin).get_json()["data"]
    assert [e["stripe_event_id"] for e in only] == [ignored["id"]]
    typed = client.get("/api/admin/webhook-events?type=test.flaky&status=processed", headers=admin).get_json()
    assert typed["pagination"]["total_items"] == 3
    bad = client.get("/api/admin/webhook-events?status=weird", headers=admin)
    assert bad.status_code == 422 and "status" in bad.get_json()["error"]["details"]


@pytest.mark.parametrize("type_", ["payout.paid", "payout.failed", "payout.canceled"])
def test_payout_events_reach_the_payouts_service_with_the_account(client, monkeypatch, type_):
    from marketplace.payouts import service as payouts

    seen = []
    name = "handle_" + type_.replace(".", "_")
    assert handlers.HANDLERS[type_].__wrapped__ is getattr(payouts, name)
    probe = handlers.on_object(lambda payout, account=None: seen.append((payout["id"], account)))
    monkeypatch.setitem(handlers.HANDLERS, type_, probe)
    payload = event(type_, {"id": "po_1", "object": "payout"}, account="acct_1")
    deliver(client, payload)
    assert row_for(payload).status == "processed" and seen == [("po_1", "acct_1")]


def test_handlers_cover_the_issue_s_event_types():
    expected = {
        "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
        "payment_intent.requires_action", "charge.refunded", "refund.updated", "refund.failed",
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated",
        "charge.dispute.closed", "account.updated", "transfer.created", "transfer.reversed",
        "payout.paid", "payout.failed", "payout.canceled", "application_fee.refunded",
    }
    assert expected <= set(handlers.HANDLERS)


def test_every_handler_is_a_service_function_imported_by_name():
    """The table holds functions, not names looked up later: nothing can turn into `ignored`."""
    for event_type, handler in handlers.HANDLERS.items():
        if event_type == "test.flaky":  # this module's own (see _flaky_type)
            continue
        target = getattr(handler, "__wrapped__", handler)
        assert callable(target) and target.__module__.startswith("marketplace."), event_type
        assert getattr(__import__(target.__module__, fromlist=["_"]), target.__name__) is target, event_type


def test_service_handlers_get_the_object_and_the_account_when_they_take_it():
    seen = []

    def plain(obj):
        seen.append(("plain", obj["id"]))

    def scoped(obj, account=None):
        seen.append(("scoped", obj["id"], account))

    handlers.on_object(plain)(event("x", {"id": "tr_1"}, account="acct_5"))
    handlers.on_object(scoped)(event("x", {"id": "tr_2"}, account="acct_5"))
    assert seen == [("plain", "tr_1"), ("scoped", "tr_2", "acct_5")]


def test_safe_error_keeps_codes_and_drops_secrets():
    from marketplace.errors import ServiceUnavailable
    text = service.safe_error(ServiceUnavailable("down", code="stripe_unavailable"))
    assert text == "ServiceUnavailable (stripe_unavailable): down"
    assert "rk_live_zz" not in service.safe_error(ValueError("key rk_live_zz and Bearer abc.def"))


def drain_rq():
    """What `flask worker` does: relay the outbox, then run what is queued."""
    outbox.relay()
    SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)


def test_with_redis_the_answer_comes_first_and_a_worker_processes(redis_app):
    client = redis_app.test_client()
    payload = event("test.flaky")
    assert deliver(client, payload).get_json() == {"received": True}
    assert row_for(payload).status == "received" and CALLS == []  # acknowledged, not processed
    jobs = db.session.scalars(select(OutboxMessage.args).where(OutboxMessage.job == "jobs.webhooks.process_event_job"))
    assert list(jobs) == [[row_for(payload).id]]  # the job was committed with the event
    drain_rq()
    row = row_for(payload)
    assert (row.status, row.attempts) == ("processed", 1) and CALLS == [payload["id"]]


def test_on_postgresql_the_acknowledgement_leaves_the_job_to_the_workers_relay(redis_app, pg_only):
    """One statement stores the event and its outbox row; its commit NOTIFYs the workers."""
    ticker = Ticker(redis_app, [])
    listener = threading.Thread(target=ticker.listen, daemon=True)
    listener.start()
    try:
        assert ticker.wake.wait(10)  # listening (it wakes once on connecting)
        ticker.wake.clear()
        payload = event("test.flaky")
        assert deliver(redis_app.test_client(), payload).get_json() == {"received": True}
        assert queue.get_queue().count == 0  # the request handed nothing to Redis
        assert ticker.wake.wait(10)  # the commit's NOTIFY reached the listener
        ticker.wake.clear()
        assert deliver(redis_app.test_client(), payload).get_json() == {"received": True, "duplicate": True}
        assert not ticker.wake.wait(0.5)  # a duplicate records no job and wakes nobody
    finally:
        ticker.shutdown()
        listener.join(10)
    assert outbox.relay() == 1 and queue.get_queue().count == 1
    SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)
    assert (row_for(payload).status, CALLS) == ("processed", [payload["id"]])


def test_with_redis_a_failure_is_retried_from_the_outbox_not_from_redis(redis_app):
    client = redis_app.test_client()
    payload = event("test.flaky")
    FAILURES[payload["id"]] = 1
    deliver(client, payload)
    drain_rq()
    row = row_for(payload)
    assert (row.status, row.attempts) == ("received", 1) and "boom" in row.last_error
    assert ScheduledJobRegistry(queue=queue.get_queue()).get_job_ids() == []  # nothing only Redis knows
    assert queue.get_redis().flushdb()  # Redis restarted without persistence: the retry survives
    assert len(pending_retries(payload)) == 1
    make_due()
    drain_rq()
    row = row_for(payload)
    assert (row.status, row.attempts, row.last_error) == ("processed", 2, None)


def test_with_redis_every_attempt_up_to_the_limit_runs_whatever_rq_s_own_retries(redis_app):
    redis_app.config["WEBHOOK_MAX_ATTEMPTS"] = 9  # more than RQ's five retries of a raising job
    payload = event("test.flaky")
    FAILURES[payload["id"]] = 100
    deliver(redis_app.test_client(), payload)
    for _ in range(12):
        make_due()
        drain_rq()
    row = row_for(payload)
    assert (row.status, row.attempts) == ("failed", 9) and pending_retries(payload) == []
    assert FAILURES[payload["id"]] == 100 - 9


def test_a_second_job_for_an_event_being_handled_does_not_run_it(client, monkeypatch):
    """A replay or a requeue while an attempt runs: the lease lets one run at a time."""
    payload = event("test.flaky")
    inner = []

    def reentrant(event_):
        inner.append(service.process_event(row_for(payload).id))  # the second job, mid-run
        CALLS.append(event_["id"])

    monkeypatch.setitem(handlers.HANDLERS, "test.flaky", reentrant)
    deliver(client, payload)
    row = row_for(payload)
    assert inner == ["received"] and CALLS == [payload["id"]]
    assert (row.status, row.attempts, row.locked_until) == ("processed", 1, None)


def test_a_worker_killed_mid_attempt_leaves_the_event_to_the_next_run_once_its_lease_ends(client, monkeypatch):
    payload = event("test.flaky")
    monkeypatch.setitem(handlers.HANDLERS, "test.flaky", lambda event_: (_ for _ in ()).throw(SystemExit))
    with pytest.raises(SystemExit):
        deliver(client, payload)
    row = row_for(payload)
    assert (row.status, row.attempts) == ("received", 1) and row.locked_until > utcnow()
    assert service.process_event(row.id) == "received" and row_for(payload).attempts == 1  # still held
    monkeypatch.setitem(handlers.HANDLERS, "test.flaky", flaky)
    later = utcnow() + service.LEASE + timedelta(seconds=1)
    assert service.requeue_stalled(now=later) == 1
    row = row_for(payload)
    assert row.next_attempt_at == later
    monkeypatch.setattr(service, "utcnow", lambda: later)
    outbox.relay()
    row = row_for(payload)
    assert (row.status, row.attempts) == ("processed", 2) and CALLS == [payload["id"]]


def test_an_event_whose_job_was_lost_is_requeued_once_overdue(redis_app):
    payload = event("test.flaky")
    deliver(redis_app.test_client(), payload)
    outbox.relay()
    queue.get_redis().flushdb()  # the job is gone with Redis' data
    assert service.requeue_stalled() == 0  # not overdue yet: the job may simply be queued
    later = utcnow() + service.STALLED_AFTER + timedelta(seconds=1)
    assert service.requeue_stalled(now=later) == 1
    assert service.requeue_stalled(now=later) == 0  # requeued once, then overdue again only later
    drain_rq()
    row = row_for(payload)
    assert (row.status, row.attempts) == ("processed", 1) and CALLS == [payload["id"]]
    assert service.requeue_stalled(now=later + service.STALLED_AFTER * 2) == 0  # finished events stay put
