"""The app's Stripe-facing flows end to end, against the emulator or, with
`STRIPE_TEST_SECRET_KEY` set (`make test-stripe`), against Stripe's test mode.

On Stripe nothing can reach this machine's webhook endpoint, so the app takes its events
the way it does after an outage: `sync_events` reads them back from `/v1/events`. On the
emulator they are delivered to the endpoint, signed, as Stripe delivers them. Either way
the same handlers run. Vendors are Custom accounts with Stripe's test verification data on
Stripe (an Express account needs a person in Stripe's hosted onboarding), Express accounts
onboarded by the emulator's control here.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from marketplace import stripe_gateway
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.orders.models import Order
from marketplace.payments.models import Payment
from tests.conftest import _assert_ledger_balanced, _clean, make_app
from tests.factories import VendorFactory
from tests.payments_helpers import emu, onboarded_vendor, order_for, settle

# On the emulator, the app is the conftest's, made to talk to it.
pytestmark = pytest.mark.needs("emulator")

REAL_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY")
REAL_BASE = os.environ.get("STRIPE_TEST_API_BASE")  # unset: Stripe itself


class EmulatorFlows:
    """The app on the emulator; events delivered to its webhook endpoint."""

    real = False

    def __init__(self, emulator):
        self.emulator = emulator

    def vendor(self):
        return onboarded_vendor(self.emulator)

    def deliver(self, client, payment_ids=()):
        settle(client, self.emulator)

    def balance(self, account):
        balance = emu(self.emulator, "GET", "/v1/balance", account=account)
        return sum(b["amount"] for b in balance["available"] + balance["pending"] if b["currency"] == "usd")


class StripeFlows:
    """The app on Stripe's test mode; events read back with sync_events."""

    real = True

    def __init__(self):
        self.started = datetime.now(timezone.utc) - timedelta(minutes=1)

    def vendor(self):
        vendor = VendorFactory(stripe_account_id=None)
        account = stripe_gateway.client().v1.accounts.create({
            "type": "custom", "country": "US", "email": vendor.email, "business_type": "individual",
            "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
            "settings": {"payouts": {"schedule": {"interval": "manual"}}},
            "business_profile": {"mcc": "5734", "url": "https://example.com"},
            "individual": {"first_name": "Jenny", "last_name": "Rosen", "email": vendor.email,
                           "phone": "+15555550100", "dob": {"day": 1, "month": 1, "year": 1901},
                           "ssn_last_4": "0000", "id_number": "000000000",
                           "address": {"line1": "address_full_match", "city": "San Francisco",
                                       "state": "CA", "postal_code": "94111", "country": "US"}},
            "tos_acceptance": {"date": int(time.time()), "ip": "127.0.0.1"},
            "external_account": {"object": "bank_account", "country": "US", "currency": "usd",
                                 "routing_number": "110000000", "account_number": "000123456789"},
            "metadata": {"vendor_id": vendor.id},
        }, {"idempotency_key": f"flow-vendor-{vendor.id}"})
        deadline = time.time() + 60
        while stripe_gateway.retrieve_account(account.id)["capabilities"].get("transfers") != "active":
            assert time.time() < deadline, "the test account was not verified in 60 s"
            time.sleep(2)
        vendor.stripe_account_id = account.id
        db.session.commit()
        return vendor

    def deliver(self, client, payment_ids=()):
        from marketplace.webhooks.sync import sync_events

        deadline = time.time() + 120
        for payment_id in payment_ids:  # asynchronous capture: wait until the charge settled
            charge = db.session.get(Payment, payment_id).stripe_charge_id
            while not stripe_gateway.retrieve_charge(charge).get("balance_transaction"):
                assert time.time() < deadline, f"charge {charge} did not settle in 120 s"
                time.sleep(2)
        time.sleep(3)  # events are listed a moment after they happen
        sync_events(self.started)

    def balance(self, account):
        balance = stripe_gateway.retrieve_balance(account)
        return sum(b["amount"] for b in balance["available"] + balance["pending"] if b["currency"] == "usd")


@pytest.fixture
def flows(request, migrated):
    if not REAL_KEY:
        emulator = request.getfixturevalue("emulator")
        request.getfixturevalue("stripe_app")
        yield EmulatorFlows(emulator)
        return
    app = make_app(migrated, STRIPE_SECRET_KEY=REAL_KEY, STRIPE_API_BASE=REAL_BASE, STRIPE_MAX_NETWORK_RETRIES=2)
    with app.app_context():
        yield StripeFlows()
        _assert_ledger_balanced()
        db.session.remove()
        _clean(db.engine)
        db.engine.dispose()


@pytest.fixture
def client(flows):
    from flask import current_app

    return current_app.test_client()


def _pay(client, shopper, order_id, payment_method="pm_card_visa"):
    assert client.post(f"/api/orders/{order_id}/payment-intent", headers=shopper).status_code == 201
    return client.post(f"/api/orders/{order_id}/confirm", json={"payment_method": payment_method}, headers=shopper)


def _payment_id(order_id):
    db.session.rollback()
    return db.session.scalar(select(Payment.id).where(Payment.order_id == order_id))


def _vendors_agree(flows, order_id):
    """Each vendor's Stripe balance equals its ledger balance (fresh accounts on both Stripes)."""
    db.session.rollback()
    for split in db.session.get(Order, order_id).splits:
        from marketplace.vendors.models import Vendor

        vendor = db.session.get(Vendor, split.vendor_id)
        assert flows.balance(vendor.stripe_account_id) == ledger.balance(f"vendor:{vendor.id}:stripe_balance", "usd")


def test_a_destination_order_is_paid_booked_and_refunded(flows, client, shopper, admin):
    vendor = flows.vendor()
    order = order_for(client, shopper, [vendor], [2500])
    paid = _pay(client, shopper, order["id"])
    assert paid.status_code == 200 and paid.get_json()["order_status"] == "paid"
    flows.deliver(client, [_payment_id(order["id"])])
    body = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert body["splits"][0]["stripe_transfer_id"].startswith("tr_")
    assert db.session.get(Payment, _payment_id(order["id"])).stripe_balance_transaction_id.startswith("txn_")
    assert flows.balance(vendor.stripe_account_id) == 2250
    _vendors_agree(flows, order["id"])
    refund = client.post(f"/api/orders/{order['id']}/refunds", headers=admin,
                         json={"amount": 1000, "reason": "requested_by_customer"})
    assert refund.status_code == 201 and refund.get_json()["status"] in ("succeeded", "pending")
    flows.deliver(client)
    assert flows.balance(vendor.stripe_account_id) == 2250 - 900
    _vendors_agree(flows, order["id"])


def test_a_three_vendor_order_is_transferred_and_partly_refunded(flows, client, shopper, admin):
    vendors = [flows.vendor() for _ in range(3)]
    order = order_for(client, shopper, vendors, [1999, 3333, 505])
    assert _pay(client, shopper, order["id"]).status_code == 200
    flows.deliver(client, [_payment_id(order["id"])])
    body = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert all(s["stripe_transfer_id"].startswith("tr_") for s in body["splits"])
    _vendors_agree(flows, order["id"])
    refund = client.post(f"/api/orders/{order['id']}/refunds", headers=admin,
                         json={"amount": 1001, "reason": "requested_by_customer"})
    assert refund.status_code == 201, refund.get_json()
    flows.deliver(client)
    assert sum(a["amount"] for a in refund.get_json()["allocations"]) == 1001
    _vendors_agree(flows, order["id"])


def test_a_declined_card_leaves_the_order_payable(flows, client, shopper):
    order = order_for(client, shopper, [flows.vendor()], [1500])
    declined = _pay(client, shopper, order["id"], "pm_card_chargeDeclinedInsufficientFunds")
    assert declined.status_code == 402
    assert declined.get_json()["error"]["details"]["decline_code"] == "insufficient_funds"
    retried = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"},
                          headers=shopper)
    assert retried.status_code == 200 and retried.get_json()["order_status"] == "paid"
    flows.deliver(client, [_payment_id(order["id"])])
    _vendors_agree(flows, order["id"])


def test_three_d_secure_is_never_completed_by_confirming_again(flows, client, shopper):
    order = order_for(client, shopper, [flows.vendor()], [1500])
    first = _pay(client, shopper, order["id"], "pm_card_authenticationRequired")
    assert first.get_json()["status"] == "requires_action"
    again = client.post(f"/api/orders/{order['id']}/confirm",
                        json={"payment_method": "pm_card_authenticationRequired"}, headers=shopper)
    assert again.get_json()["status"] == "requires_action"
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "pending_payment"


def test_the_stripe_errors_the_app_maps(flows, client):
    with pytest.raises(stripe_gateway.StripeFailure):
        stripe_gateway.retrieve_payment_intent("pi_does_not_exist")
    with pytest.raises(stripe_gateway.StripeFailure):
        stripe_gateway.create_payment_intent({"amount": 1000, "currency": "usd",
                                              "payment_method_types": ["card"]}, f"flow-{time.time_ns()}")
