"""Paying for orders through the emulator: destination and separate charges, declines, 3-D Secure."""
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.orders.models import Order
from marketplace.movements import engine
from marketplace.movements.models import Movement
from marketplace.payments import service
from marketplace.payments.models import Payment
from tests.payments_helpers import assert_balances_match, emu, onboarded_vendor, order_for, pay, settle, stripe_balance

pytestmark = pytest.mark.needs("emulator")


def test_one_vendor_order_is_a_destination_charge(client, shopper, emulator):
    emu(emulator, "POST", "/_emulator/capture", delay_seconds=3600)  # settles when the test says, not 0.2 s later
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [1000, 2345])
    created = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    assert created.status_code == 201
    body = created.get_json()
    assert body["charge_type"] == "destination" and body["amount"] == 3345 and body["currency"] == "usd"
    assert body["payment_intent_id"].startswith("pi_") and body["client_secret"]
    intent = emu(emulator, "GET", f"/v1/payment_intents/{body['payment_intent_id']}")
    assert intent["transfer_data"]["destination"] == vendor.stripe_account_id
    assert intent["application_fee_amount"] == order["splits"][0]["platform_fee"] == 335

    again = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    assert again.status_code == 200 and again.get_json() == body

    confirmed = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=shopper)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["status"] == "succeeded" and confirmed.get_json()["order_status"] == "paid"
    paid = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert paid["status"] == "paid"
    assert paid["payment"]["status"] == "succeeded" and paid["payment"]["stripe_charge_id"].startswith("ch_")
    # Asynchronous capture: the charge has not settled, nothing of it exists to book yet.
    assert paid["splits"][0]["stripe_transfer_id"] is None and _entry_count() == 0
    settle(client, emulator)  # charge.updated announces the balance transaction, transfer and fee
    paid = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert paid["splits"][0]["stripe_transfer_id"].startswith("tr_")
    # Stripe: platform 3345 - 127 fee - 3345 transfer + 335 application fee; vendor 3345 - 335.
    assert stripe_balance(emulator) == 335 - 127
    assert stripe_balance(emulator, vendor.stripe_account_id) == 3010 == paid["splits"][0]["vendor_net"]
    assert_balances_match(emulator, order["id"])


def test_three_vendor_order_is_separate_charges_and_transfers(client, shopper, emulator):
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator, fee_percent_bps=1250, fee_fixed=30),
               onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [1999, 3333, 505])
    response = pay(client, shopper, order["id"], emulator=emulator)
    assert response.status_code == 200 and response.get_json()["status"] == "succeeded"
    intent = emu(emulator, "GET", f"/v1/payment_intents/{response.get_json()['payment_intent_id']}")
    assert intent["transfer_group"] == f"order_{order['id']}" and intent.get("transfer_data") is None
    paid = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert paid["status"] == "paid" and paid["charge_type"] == "separate_transfers"
    stripe_fee = db.session.scalar(select(Payment.stripe_fee))
    assert stripe_fee == 199  # 5837 * 2.9% + 30 = 199.27
    for split, vendor in zip(paid["splits"], vendors):
        assert split["stripe_transfer_id"].startswith("tr_") and split["status"] == "transferred"
        assert stripe_balance(emulator, vendor.stripe_account_id) == split["vendor_net"]
    assert stripe_balance(emulator) == paid["platform_fee"] - stripe_fee
    assert_balances_match(emulator, order["id"])
    transfers = emu(emulator, "GET", "/v1/transfers", transfer_group=f"order_{order['id']}")["data"]
    assert sorted(t["amount"] for t in transfers) == sorted(s["vendor_net"] for s in paid["splits"])
    assert {t["source_transaction"] for t in transfers} == {paid["payment"]["stripe_charge_id"]}


def test_success_handler_is_safe_twice_and_after_the_fact(client, shopper, emulator):
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [1200, 800])
    intent_id = pay(client, shopper, order["id"], emulator=emulator).get_json()["payment_intent_id"]
    entries = _entry_count()  # the charge settled and booked
    service.handle_payment_intent_succeeded({"id": intent_id})
    service.handle_payment_intent_succeeded({"id": intent_id, "status": "requires_payment_method"})
    engine.sweep()
    assert _entry_count() == entries
    assert len(emu(emulator, "GET", "/v1/transfers")["data"]) == 2
    assert len(db.session.scalars(select(Movement)).all()) == 2  # planned once


def _entry_count():
    from marketplace.ledger.models import JournalEntry

    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(JournalEntry))


def test_decline_is_402_and_the_order_can_be_paid_again(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1500])
    declined = pay(client, shopper, order["id"], "pm_card_chargeDeclinedInsufficientFunds")
    assert declined.status_code == 402
    error = declined.get_json()["error"]
    assert error["code"] == "card_declined" and error["details"]["decline_code"] == "insufficient_funds"
    after = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert after["status"] == "payment_failed" and after["payment"]["status"] == "requires_payment_method"
    retried = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=shopper)
    assert retried.status_code == 200 and retried.get_json()["status"] == "succeeded"
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "paid"
    settle(client, emulator)
    assert_balances_match(emulator, order["id"])


def test_three_d_secure_then_authenticated(client, shopper, emulator):
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [1000, 1000])
    response = pay(client, shopper, order["id"], "pm_card_authenticationRequired")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "requires_action" and body["next_action"]["type"]
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "pending_payment"
    # Confirming again is a new attempt that needs authentication again: never a way round it.
    again = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_authenticationRequired"},
                        headers=shopper)
    assert again.status_code == 200 and again.get_json()["status"] == "requires_action"
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "pending_payment"
    # Only the shopper completes it (Stripe.js / the hosted page); the events do the rest.
    emu(emulator, "POST", f"/_emulator/payment_intents/{body['payment_intent_id']}/authenticate", outcome="succeed")
    settle(client, emulator)
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "paid"
    assert_balances_match(emulator, order["id"])


def test_transfer_retried_after_a_stripe_error_exists_once(client, shopper, emulator):
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [1000, 2000])
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers", mode="error", count=1)
    assert pay(client, shopper, order["id"]).status_code == 200
    db.session.rollback()
    unknown = db.session.scalars(select(Movement).where(Movement.kind == "transfer", Movement.status == "unknown")).all()
    assert len(unknown) == 1 and unknown[0].attempts == 1 and "unavailable" in unknown[0].last_error
    unknown[0].next_attempt_at = utcnow() - timedelta(seconds=1)  # its retry is due
    db.session.commit()
    assert engine.sweep() == 1
    transfers = emu(emulator, "GET", "/v1/transfers", transfer_group=f"order_{order['id']}")["data"]
    assert len(transfers) == 2
    assert {m.status for m in db.session.scalars(select(Movement))} == {"succeeded"}
    time.sleep(0.5)  # Stripe settles the charge on its own meanwhile ...
    settle(client, emulator)  # ... and its events reach the app before the books are compared
    assert_balances_match(emulator, order["id"])


def test_the_stripe_package_retries_with_the_same_key(client, shopper, emulator, stripe_app):
    from marketplace.payments import transfers

    stripe_app.extensions.pop("stripe_client", None)
    stripe_app.config["STRIPE_MAX_NETWORK_RETRIES"] = 2
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [700, 900])
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers", mode="error", count=2, method="POST")
    assert pay(client, shopper, order["id"]).status_code == 200
    assert len(emu(emulator, "GET", "/v1/transfers")["data"]) == 2
    payment_id = db.session.scalar(select(Payment.id))
    assert transfers.create_transfers(payment_id) == 0  # nothing left to do
    stripe_app.extensions.pop("stripe_client", None)


def test_only_the_owner_pays_and_only_an_unpaid_order(client, auth, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    other = auth.headers("shopper")
    assert client.post(f"/api/orders/{order['id']}/payment-intent", headers=other).status_code == 404
    assert client.post(f"/api/orders/{order['id']}/payment-intent", headers=auth.headers("admin")).status_code == 403
    assert client.post(f"/api/orders/{order['id']}/cancel", headers=shopper).status_code == 200
    refused = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "order_not_payable"
    bad = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa", "x": 1}, headers=shopper)
    assert bad.status_code == 422


def test_canceled_payment_intent_releases_stock_once(client, shopper, emulator):
    from marketplace.catalog.models import Product

    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000], [3])
    intent = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper).get_json()
    emu(emulator, "POST", f"/v1/payment_intents/{intent['payment_intent_id']}/cancel")
    service.handle_payment_intent_canceled({"id": intent["payment_intent_id"]})
    service.handle_payment_intent_canceled({"id": intent["payment_intent_id"]})
    db.session.rollback()
    assert db.session.get(Order, order["id"]).status == "canceled"
    assert db.session.get(Product, order["items"][0]["product_id"]).stock == 50


def test_payment_history(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    pay(client, shopper, order["id"])
    listed = client.get("/api/payments?status=succeeded", headers=shopper).get_json()
    assert listed["pagination"]["total_items"] == 1 and listed["data"][0]["order_id"] == order["id"]
    assert client.get("/api/payments?status=canceled", headers=shopper).get_json()["data"] == []


def test_twenty_concurrent_calls_make_one_payment_intent(client, shopper, emulator, stripe_app, pg_only):
    order = order_for(client, shopper, [onboarded_vendor(emulator), onboarded_vendor(emulator)], [1000, 500])
    results, barrier = [], threading.Barrier(20)

    def call():
        with stripe_app.app_context():
            barrier.wait(5)
            response = stripe_app.test_client().post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
            results.append((response.status_code, response.get_json()["payment_intent_id"]))

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(status for status, _ in results) == [200] * 19 + [201]
    assert len({pi for _, pi in results}) == 1
    assert len(emu(emulator, "GET", "/v1/payment_intents")["data"]) == 1


@pytest.mark.parametrize("mode, status, code", [
    ("rate_limit", 429, "rate_limited"),
    ("error", 503, "stripe_unavailable"),
])
def test_stripe_errors_on_confirm_are_mapped_never_500(client, shopper, emulator, mode, status, code):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/payment_intents", mode=mode, count=1, method="POST")
    response = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=shopper)
    assert response.status_code == status and response.get_json()["error"]["code"] == code
    assert response.headers.get("Retry-After")
    retried = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=shopper)
    assert retried.status_code == 200 and retried.get_json()["status"] == "succeeded"
