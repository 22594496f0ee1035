"""The Idempotency-Key header: replay, reuse with another body, in use, crash recovery, reaping."""
import threading
from datetime import timedelta

import pytest
from flask import g
from sqlalchemy import func, select

from marketplace import idempotency
from marketplace.auth.guard import require_auth
from marketplace.database import utcnow
from marketplace.errors import AppError
from marketplace.extensions import db
from marketplace.idempotency import IdempotencyKey, idempotent

CALLS = []


@pytest.fixture
def probe(app):
    CALLS.clear()
    gate = threading.Event()

    @app.route("/probe/charge", methods=["POST"])
    @require_auth("shopper")
    @idempotent
    def charge():
        from flask import request

        body = request.get_json()
        if body.get("wait"):
            gate.wait(5)
        if body.get("fail") == "app":
            raise AppError("card declined", code="card_declined", status=402)
        if body.get("fail") == "crash":
            raise RuntimeError("boom")
        existing = idempotency.recovered("probe")
        if existing:
            return {"id": existing, "recovered": True}, 201
        CALLS.append(body)
        new_id = f"probe_{len(CALLS)}"
        idempotency.bind("probe", new_id)
        db.session.commit()
        if body.get("die_after_commit"):
            raise SystemExit("process died")  # the response is never stored
        return {"id": new_id, "amount": body.get("amount")}, 201

    app.gate = gate
    return app


def post(client, headers, body, key="key-1"):
    return client.post("/probe/charge", json=body, headers={**headers, "Idempotency-Key": key})


def test_replay_returns_the_first_response(probe, auth):
    client, headers = probe.test_client(), auth.headers("shopper")
    first = post(client, headers, {"amount": 100})
    again = post(client, headers, {"amount": 100})
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(CALLS) == 1


def test_same_key_other_body_is_422(probe, auth):
    client, headers = probe.test_client(), auth.headers("shopper")
    post(client, headers, {"amount": 100})
    reused = post(client, headers, {"amount": 101})
    assert reused.status_code == 422
    assert reused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert len(CALLS) == 1


def test_keys_are_scoped_per_user(probe, auth):
    client = probe.test_client()
    post(client, auth.headers("shopper"), {"amount": 1})
    post(client, auth.headers("shopper"), {"amount": 2})
    assert len(CALLS) == 2


def test_key_in_use_is_409(probe, auth, pg_only):
    client, headers = probe.test_client(), auth.headers("shopper")
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", _post_in_thread(probe, headers)))
    first.start()
    for _ in range(100):
        if db.session.scalar(select(func.count()).select_from(IdempotencyKey)):
            break
        threading.Event().wait(0.02)
    second = post(client, headers, {"amount": 5, "wait": True})
    probe.gate.set()
    first.join(10)
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "idempotency_key_in_use"
    assert results["first"] == 201
    assert len(CALLS) == 1


def _post_in_thread(app, headers):
    with app.app_context():
        return post(app.test_client(), headers, {"amount": 5, "wait": True}).status_code


def test_client_errors_are_stored_and_replayed(probe, auth):
    client, headers = probe.test_client(), auth.headers("shopper")
    first = post(client, headers, {"fail": "app"})
    again = post(client, headers, {"fail": "app"})
    assert first.status_code == again.status_code == 402
    assert again.headers["Idempotent-Replayed"] == "true"


def test_server_errors_unlock_the_key_for_a_retry(probe, auth):
    client, headers = probe.test_client(), auth.headers("shopper")
    assert post(client, headers, {"fail": "crash"}).status_code == 500
    row = db.session.scalar(select(IdempotencyKey))
    assert row.locked_at is None and row.response_status is None


def test_crash_after_commit_recovers_instead_of_creating_twice(probe, auth):
    client, headers = probe.test_client(), auth.headers("shopper")
    with pytest.raises(SystemExit):
        post(client, headers, {"amount": 7, "die_after_commit": True})
    db.session.rollback()
    row = db.session.scalar(select(IdempotencyKey))
    assert row.recovery_point == "probe:probe_1" and row.response_status is None
    retry = post(client, headers, {"amount": 7, "die_after_commit": True})
    assert retry.status_code == 409  # the lock is still fresh: the first might be running
    row.locked_at = utcnow() - timedelta(minutes=5)  # the lock went stale: the first is dead
    db.session.commit()
    retry = post(client, headers, {"amount": 7, "die_after_commit": True})
    assert retry.status_code == 201 and retry.get_json() == {"id": "probe_1", "recovered": True}
    assert len(CALLS) == 1


def test_overlong_key_is_422(probe, auth):
    response = post(probe.test_client(), auth.headers("shopper"), {"amount": 1}, key="k" * 256)
    assert response.status_code == 422 and "Idempotency-Key" in response.get_json()["error"]["details"]


def test_reaper_removes_keys_older_than_a_day(probe, auth):
    client, headers = probe.test_client(), auth.headers("shopper")
    post(client, headers, {"amount": 1}, key="old")
    post(client, headers, {"amount": 2}, key="new")
    old = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "old"))
    old.created_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    from jobs.maintenance import reap_idempotency_keys

    assert reap_idempotency_keys() == 1
    assert db.session.scalars(select(IdempotencyKey.key)).all() == ["new"]
