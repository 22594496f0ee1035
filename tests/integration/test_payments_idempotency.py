"""Idempotency-Key on the payment routes: replay, reuse with another body, in use."""
import threading
import time

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.payments.models import Refund
from tests.payments_helpers import emu, onboarded_vendor, order_for, pay

pytestmark = pytest.mark.needs("emulator")


def keyed(headers, key):
    return {**headers, "Idempotency-Key": key}


def test_payment_intent_replay(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    first = client.post(f"/api/orders/{order['id']}/payment-intent", headers=keyed(shopper, "pi-1"))
    again = client.post(f"/api/orders/{order['id']}/payment-intent", headers=keyed(shopper, "pi-1"))
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    other_key = client.post(f"/api/orders/{order['id']}/payment-intent", headers=keyed(shopper, "pi-2"))
    assert other_key.status_code == 200 and other_key.get_json() == first.get_json()


def test_confirm_replay_and_reuse_with_another_body(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    url = f"/api/orders/{order['id']}/confirm"
    declined = client.post(url, json={"payment_method": "pm_card_chargeDeclined"}, headers=keyed(shopper, "c-1"))
    replay = client.post(url, json={"payment_method": "pm_card_chargeDeclined"}, headers=keyed(shopper, "c-1"))
    assert declined.status_code == replay.status_code == 402
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == declined.get_json()
    reused = client.post(url, json={"payment_method": "pm_card_visa"}, headers=keyed(shopper, "c-1"))
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"
    paid = client.post(url, json={"payment_method": "pm_card_visa"}, headers=keyed(shopper, "c-2"))
    assert paid.status_code == 200 and paid.get_json()["status"] == "succeeded"


def test_refund_and_cancel_replay(client, shopper, auth, emulator):
    admin = auth.headers("admin")
    order = order_for(client, shopper, [onboarded_vendor(emulator), onboarded_vendor(emulator)], [1000, 1000])
    pay(client, shopper, order["id"], emulator=emulator)
    url = f"/api/orders/{order['id']}/refunds"
    body = {"amount": 300, "reason": "duplicate"}
    first = client.post(url, json=body, headers=keyed(admin, "r-1"))
    again = client.post(url, json=body, headers=keyed(admin, "r-1"))
    assert first.status_code == again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    reused = client.post(url, json={**body, "amount": 301}, headers=keyed(admin, "r-1"))
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"

    unpaid = order_for(client, shopper, [onboarded_vendor(emulator)], [500])
    cancel = f"/api/orders/{unpaid['id']}/cancel"
    assert client.post(cancel, headers=keyed(shopper, "x-1")).status_code == 200
    replayed = client.post(cancel, headers=keyed(shopper, "x-1"))
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"


def test_confirm_in_use_is_409(client, shopper, emulator, stripe_app, pg_only):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    url = f"/api/orders/{order['id']}/confirm"
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/payment_intents", mode="delay", seconds=1.5,
        method="POST", count=1)
    results = {}

    def first():
        with stripe_app.app_context():
            response = stripe_app.test_client().post(url, json={"payment_method": "pm_card_visa"}, headers=keyed(shopper, "busy"))
            results["first"] = response.status_code

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.5)
    second = client.post(url, json={"payment_method": "pm_card_visa"}, headers=keyed(shopper, "busy"))
    thread.join(10)
    assert second.status_code == 409 and second.get_json()["error"]["code"] == "idempotency_key_in_use"
    assert results["first"] == 200
