"""Money under faults: each finding of the adversarial run (H1-H5, M1, M2), reproduced
through the emulator's fault injection, and what must hold after each: nothing moved
twice, nothing lost, the ledger equal to Stripe, reconciliation clean."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import requests
from redis import Redis
from sqlalchemy import func, select

from marketplace import outbox, stripe_gateway
from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.models import Movement
from marketplace.outbox import OutboxMessage
from marketplace.payments.models import Refund
from marketplace.payouts import service as payouts
from marketplace.payouts.models import Payout
from tests.payments_helpers import (assert_balances_match, emu, onboarded_vendor, order_for, pay, settle,
                                    stripe_balance)
from tests.payouts_helpers import advance, follow_emulator_clock, stripe_payouts, vendor
from tests.reconciliation_helpers import emulator_now, reconcile

pytestmark = pytest.mark.needs("emulator")


def _refund(client, admin, order_id, amount=None, **headers):
    body = {"reason": "requested_by_customer", **({"amount": amount} if amount else {})}
    return client.post(f"/api/orders/{order_id}/refunds", json=body, headers={**admin, **headers})


def _fault(emulator, **fault):
    emu(emulator, "POST", "/_emulator/faults", **fault)


def _clear_faults(emulator):
    requests.delete(f"{emulator.url}/_emulator/faults", timeout=10)


def _due_now(hours: float = 0) -> None:
    """Every unfinished movement due now (the time the sweep would wait has passed)."""
    for movement in db.session.scalars(select(Movement).where(Movement.status.in_(("planned", "unknown")))):
        movement.next_attempt_at = utcnow() - timedelta(seconds=1)
        if hours and movement.first_sent_at:
            movement.first_sent_at -= timedelta(hours=hours)
    db.session.commit()


def _sweep_until_done(rounds: int = 5) -> None:
    for _ in range(rounds):
        _due_now()
        if not engine.sweep():
            return


def _clean(client, admin, emulator):
    """Reconciliation over the test's window finds nothing amiss, and nothing is unfinished."""
    now = emulator_now(emulator)
    run = reconcile(client, admin, now - 3600, now + 3600)
    assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
        "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}, run["discrepancies"]
    db.session.rollback()
    unfinished = db.session.scalars(select(Movement).where(Movement.status != "succeeded")).all()
    assert [(m.kind, m.status, m.last_error) for m in unfinished if m.status != "failed"] == []


def test_a_request_whose_key_is_in_use_is_in_flight_not_refused(client, shopper, emulator, stripe_app):
    """Stripe answers 409 `idempotency_key_in_use` while the first request with the key
    runs; the stripe package raises it as a plain APIError: it must still mean "unknown"."""
    seller = onboarded_vendor(emulator)
    assert pay(client, shopper, order_for(client, shopper, [seller], [2000])["id"], emulator=emulator).status_code == 200
    advance(emulator, 10)  # the platform's share is available
    stripe_app.config["STRIPE_MAX_NETWORK_RETRIES"] = 0
    stripe_app.extensions.pop("stripe_client", None)
    params = {"amount": 100, "currency": "usd", "destination": seller.stripe_account_id}
    _fault(emulator, path_prefix="/v1/transfers", mode="delay", seconds=1.5, method="POST")
    outcome = {}

    def send():
        with stripe_app.app_context():
            outcome["first"] = stripe_gateway.create_transfer(params, "transfer-in-use")

    first = threading.Thread(target=send)
    first.start()
    time.sleep(0.5)
    with pytest.raises(stripe_gateway.StripeInFlight):
        stripe_gateway.create_transfer(params, "transfer-in-use")
    first.join()
    assert outcome["first"]["amount"] == 100
    assert stripe_gateway.create_transfer(params, "transfer-in-use")["id"] == outcome["first"]["id"]


@pytest.mark.parametrize("retries", [0, 2])
def test_h1_a_lost_refund_response_never_refunds_twice(client, shopper, admin, emulator, stripe_app, retries):
    """The answer of POST /v1/refunds is lost (timeout; with retries, 409 key in use): the
    outcome is unknown, not a failure; sent again under the same key, it is the same refund."""
    stripe_app.extensions.pop("stripe_client", None)
    stripe_app.config.update(STRIPE_TIMEOUT_SECONDS=1, STRIPE_MAX_NETWORK_RETRIES=retries)
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    delay = 2 + 2 * retries  # the retries come back 409 (key in use) while the first still runs
    _fault(emulator, path_prefix="/v1/refunds", mode="delay", seconds=delay, method="POST")
    started = time.monotonic()
    answer = _refund(client, admin, order["id"], 700)
    stripe_app.extensions.pop("stripe_client", None)
    stripe_app.config.update(STRIPE_TIMEOUT_SECONDS=30, STRIPE_MAX_NETWORK_RETRIES=0)
    assert answer.status_code == 201 and answer.get_json()["status"] == "pending"
    refund = db.session.scalar(select(Movement).where(Movement.kind == "refund"))
    assert refund.status == "unknown"  # never failed: the reservation is kept
    time.sleep(max(0.0, delay + 0.5 - (time.monotonic() - started)))  # the first one finishes at Stripe
    _sweep_until_done()
    settle(client, emulator)
    made = emu(emulator, "GET", "/v1/refunds", limit=100)["data"]
    assert [r["amount"] for r in made] == [700]  # one refund, of 700
    db.session.rollback()
    assert db.session.scalar(select(Refund)).status == "succeeded"
    assert_balances_match(emulator, order["id"])
    _clean(client, admin, emulator)


def test_h2_a_committed_refund_is_answered_with_itself_never_an_error(client, shopper, admin, emulator):
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [3000, 1000])
    _fault(emulator, path_prefix="/v1/transfers", mode="error", count=5, method="POST")  # transfers not made yet
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    _clear_faults(emulator)
    first = _refund(client, admin, order["id"], 800, **{"Idempotency-Key": "refund-h2"})
    assert first.status_code == 201 and first.get_json()["status"] == "pending"
    again = _refund(client, admin, order["id"], 800, **{"Idempotency-Key": "refund-h2"})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    for mode in ("error", "rate_limit"):
        _fault(emulator, path_prefix="/v1/refunds", mode=mode, count=5, method="POST")
        answer = _refund(client, admin, order["id"], 300)
        assert answer.status_code == 201 and answer.get_json()["status"] == "pending", answer.get_json()
        _clear_faults(emulator)
    _sweep_until_done()
    settle(client, emulator)
    db.session.rollback()
    assert sorted(r.status for r in db.session.scalars(select(Refund))) == ["succeeded"] * 3
    assert sorted(r["amount"] for r in emu(emulator, "GET", "/v1/refunds", limit=100)["data"]) == [300, 300, 800]
    assert_balances_match(emulator, order["id"])
    shown = client.get(f"/api/orders/{order['id']}", headers=admin).get_json()
    assert shown["status"] == "partially_refunded"
    _clean(client, admin, emulator)


def test_h3_after_a_failed_refund_later_refunds_take_the_vendors_share_back(client, shopper, admin, emulator):
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [2500, 1500])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    first = _refund(client, admin, order["id"], 1000).get_json()
    emu(emulator, "POST", f"/_emulator/refunds/{first['stripe_refund_id']}/fail")
    settle(client, emulator)  # refund.failed: the vendors get back what it took
    _sweep_until_done()
    assert _refund(client, admin, order["id"], 1500).status_code == 201
    assert _refund(client, admin, order["id"]).status_code == 201  # everything left
    _sweep_until_done()
    settle(client, emulator)
    db.session.rollback()
    statuses = sorted(r.status for r in db.session.scalars(select(Refund)))
    assert statuses == ["failed", "succeeded", "succeeded"]
    for seller in vendors:  # the shopper got everything back: the vendors keep nothing
        assert _balance(emulator, seller.stripe_account_id) == 0
    assert_balances_match(emulator, order["id"])
    _clean(client, admin, emulator)


def _ledger_equals_stripe(emulator, vendors) -> None:
    """Per account, the ledger's Stripe balance equals Stripe's (after payouts too)."""
    from marketplace.ledger import service as ledger

    db.session.rollback()
    assert stripe_balance(emulator) == ledger.balance("platform:stripe_balance", "usd")
    for seller in vendors:
        assert stripe_balance(emulator, seller.stripe_account_id) == ledger.balance(
            f"vendor:{seller.id}:stripe_balance", "usd"), seller.id


def _held(seller) -> int:
    from marketplace.payouts.balances import vendor_balances

    db.session.rollback()
    return sum(row["held"] for row in vendor_balances(seller.id, utcnow()))


def _balance(emulator, account):
    balance = emu(emulator, "GET", "/v1/balance", account=account)
    return sum(b["amount"] for b in balance["available"] + balance["pending"] if b["currency"] == "usd")


def test_h4_work_handed_to_a_redis_that_restarted_is_done_all_the_same(client, shopper, admin, emulator,
                                                                       redis_url, migrated):
    from tests.conftest import make_app

    app = make_app(migrated, STRIPE_API_BASE=emulator.url, REDIS_URL=redis_url)
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    with app.app_context():
        vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
        web = app.test_client()
        order = order_for(web, shopper, vendors, [1200, 800])
        assert pay(web, shopper, order["id"]).status_code == 200  # transfers handed to RQ, no worker
        created = web.post("/api/admin/payout-runs", json={"dry_run": True}, headers=admin)
        assert created.status_code == 202
        redis.flushall()  # Redis restarts without persistence: every queued job is gone
        assert db.session.scalar(select(func.count()).select_from(Movement)
                                 .where(Movement.status == "succeeded")) == 0
        for message in db.session.scalars(select(OutboxMessage).where(OutboxMessage.done_at.is_(None))):
            message.dispatched_at = utcnow() - outbox.STALE_AFTER - timedelta(seconds=1)
        db.session.commit()
        outbox.relay()  # the worker's relay: jobs handed off but never finished go again
        from rq import SimpleWorker
        from marketplace import queue

        SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)
        engine.sweep()  # and the sweep drives what is due
        db.session.rollback()
        assert {m.status for m in db.session.scalars(select(Movement))} == {"succeeded"}
        assert all(s["stripe_transfer_id"] for s in web.get(f"/api/orders/{order['id']}", headers=shopper)
                   .get_json()["splits"])
        run = web.get(f"/api/admin/payout-runs/{created.get_json()['id']}", headers=admin).get_json()
        assert run["status"] == "completed"
        db.session.remove()
    redis.flushdb()


def test_h5_a_suspended_vendor_is_neither_paid_out_nor_transferred_to(client, shopper, admin, emulator,
                                                                      monkeypatch):
    follow_emulator_clock(monkeypatch, emulator)
    kept, suspended = vendor(emulator), vendor(emulator)
    together = order_for(client, shopper, [kept, suspended], [3000, 2000])
    alone = order_for(client, shopper, [suspended], [1500])
    assert client.post(f"/api/orders/{alone['id']}/payment-intent", headers=shopper).status_code == 201
    patched = client.patch(f"/api/admin/vendors/{suspended.id}", json={"status": "suspended"}, headers=admin)
    assert patched.status_code == 200 and patched.get_json()["status"] == "suspended"
    refused = client.post(f"/api/orders/{alone['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=shopper)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "vendor_suspended"
    from tests.factories import ProductFactory

    product = ProductFactory(vendor=None, vendor_id=suspended.id, price=1000, stock=5)
    new = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=shopper)
    assert new.status_code == 422  # its products cannot be bought now
    assert pay(client, shopper, together["id"], emulator=emulator).status_code == 200
    _sweep_until_done()
    splits = {s["vendor_id"]: s for s in client.get(f"/api/orders/{together['id']}", headers=shopper)
              .get_json()["splits"]}
    assert splits[kept.id]["stripe_transfer_id"] and splits[suspended.id]["stripe_transfer_id"] is None
    held = db.session.scalar(select(Movement).where(Movement.vendor_id == suspended.id))
    assert held.status == "planned" and "suspended" in held.last_error
    assert _held(suspended) == held.amount  # booked as kept on the platform for the vendor
    advance(emulator, 10)
    run = payouts.run_now()
    assert run.status == "completed"
    assert stripe_payouts(emulator, suspended) == [] and len(stripe_payouts(emulator, kept)) == 1
    entries = client.get("/api/admin/audit-log?action=vendor.status_set_suspended", headers=admin).get_json()
    assert entries["pagination"]["total_items"] == 1
    client.patch(f"/api/admin/vendors/{suspended.id}", json={"status": "active"}, headers=admin)
    db.session.rollback()
    assert db.session.get(Movement, held.id).status == "succeeded"  # released on reinstatement
    assert _balance(emulator, suspended.stripe_account_id) == held.amount
    assert _held(suspended) == 0
    _ledger_equals_stripe(emulator, [kept, suspended])
    _clean(client, admin, emulator)


def test_m1_a_payout_whose_key_expired_is_looked_up_never_sent_twice(client, shopper, admin, emulator, monkeypatch):
    follow_emulator_clock(monkeypatch, emulator)
    seller = vendor(emulator)
    order = order_for(client, shopper, [seller], [5000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    advance(emulator, 10)
    real = stripe_gateway.create_payout

    def answer_lost(*args, **kwargs):
        real(*args, **kwargs)  # Stripe makes it; its answer never reaches us
        raise stripe_gateway.ServiceUnavailable("The payment provider could not be reached.",
                                                code="stripe_unavailable")

    monkeypatch.setattr(stripe_gateway, "create_payout", answer_lost)
    assert payouts.run_now().status == "completed"
    monkeypatch.setattr(stripe_gateway, "create_payout", real)
    payout = db.session.scalar(select(Payout))
    assert payout.status == "pending" and payout.stripe_payout_id is None
    more = order_for(client, shopper, [seller], [5000])  # money on the account: a resend would be paid
    assert pay(client, shopper, more["id"], emulator=emulator).status_code == 200
    advance(emulator, 10)  # days later: the emulator has forgotten the key
    _due_now(hours=25)
    engine.sweep()
    assert len(stripe_payouts(emulator, seller)) == 1  # looked up and found, not sent again
    db.session.rollback()
    assert db.session.scalar(select(Payout)).stripe_payout_id == stripe_payouts(emulator, seller)[0]["id"]
    assert db.session.scalar(select(Movement).where(Movement.kind == "payout")).status == "succeeded"
    _ledger_equals_stripe(emulator, [seller])
    _clean(client, admin, emulator)


def test_m2_work_that_cannot_finish_now_is_retried_and_never_abandoned(client, shopper, admin, emulator,
                                                                       stripe_app, monkeypatch):
    """A refund after the vendor was paid out: its reversal is refused (balance_insufficient)
    and tried again later as a new request; when it runs out of attempts it needs attention,
    is listed, and an admin's retry finishes it once the money is back."""
    follow_emulator_clock(monkeypatch, emulator)
    stripe_app.config["MOVEMENT_MAX_ATTEMPTS"] = 3
    vendors = [vendor(emulator), vendor(emulator)]
    order = order_for(client, shopper, vendors, [4000, 2000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    advance(emulator, 10)
    assert payouts.run_now().payouts_created == 2  # everything paid out
    assert _refund(client, admin, order["id"], 3000).status_code == 201
    _sweep_until_done(rounds=5)
    stuck = client.get("/api/admin/movements?status=needs_attention", headers=admin).get_json()
    assert stuck["pagination"]["total_items"] == 2
    assert all("balance_insufficient" in m["last_error"] for m in stuck["data"])
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'marketplace_movements{status="needs_attention"} 2.0' in metrics
    now = emulator_now(emulator)
    run = reconcile(client, admin, now - 3600, now + 3600)  # the reconciliation names them
    assert sorted(m["id"] for m in run["movements_needing_attention"]) == sorted(m["id"] for m in stuck["data"])
    for seller in vendors:  # the vendors sell again: money to take back
        top_up = order_for(client, shopper, [seller], [5000])
        assert pay(client, shopper, top_up["id"], emulator=emulator).status_code == 200
    for movement in stuck["data"]:
        retried = client.post(f"/api/admin/movements/{movement['id']}/retry", headers=admin)
        assert retried.status_code == 202
    _sweep_until_done()
    db.session.rollback()
    assert {m.status for m in db.session.scalars(select(Movement).where(Movement.kind == "transfer_reversal"))} \
        == {"succeeded"}
    assert db.session.scalar(select(Refund)).status == "succeeded"
    again = client.post(f"/api/admin/movements/{stuck['data'][0]['id']}/retry", headers=admin)
    assert again.status_code == 409
    _ledger_equals_stripe(emulator, vendors)
    _clean(client, admin, emulator)
