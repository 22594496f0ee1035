"""Stripe Checkout for orders through the emulator: the hosted page pays the order through the
same success path as a confirmation, once, whatever order its events come in; one way to pay
at a time."""
import random

import pytest
import requests
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import JournalEntry
from marketplace.payments.models import CheckoutSession, Payment
from tests.payments_helpers import (
    assert_balances_match, deliver_events, emu, onboarded_vendor, order_for, settle, stripe_balance,
)
from tests.webhook_helpers import deliver

pytestmark = pytest.mark.needs("emulator")


def _open(client, shopper, order_id, status=201):
    response = client.post(f"/api/orders/{order_id}/checkout-session", headers=shopper)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _pay_on_the_page(session, payment_method="pm_card_visa", **extra):
    """What the shopper's browser does on Stripe's hosted page."""
    return requests.get(session["url"], params={"payment_method": payment_method, **extra},
                        allow_redirects=False, timeout=10)


def _events(emulator):
    state = emulator.emulator
    with state.lock:
        events = sorted((e for (kind, _), items in state.store.lists.items() if kind == "event" for e in items),
                        key=lambda e: e["_seq"])
        return [{k: v for k, v in e.items() if not k.startswith("_")} for e in events]


def _order(client, shopper, order_id):
    return client.get(f"/api/orders/{order_id}", headers=shopper).get_json()


@pytest.mark.parametrize("vendors", [1, 3])
def test_an_order_paid_on_the_hosted_page_is_booked_as_a_confirmed_one(client, shopper, emulator, vendors):
    sellers = [onboarded_vendor(emulator) for _ in range(vendors)]
    order = order_for(client, shopper, sellers, [1500, 2500, 999][:vendors], quantities=[2, 1, 3][:vendors])
    session = _open(client, shopper, order["id"])
    assert session["checkout_session_id"].startswith("cs_") and session["url"].startswith("http")
    assert _open(client, shopper, order["id"], status=200) == session

    stripe_session = emu(emulator, "GET", f"/v1/checkout/sessions/{session['checkout_session_id']}")
    assert stripe_session["client_reference_id"] == order["id"] and stripe_session["amount_total"] == order["total"]
    items = emu(emulator, "GET", f"/v1/checkout/sessions/{session['checkout_session_id']}/line_items")["data"]
    assert [(i["quantity"], i["amount_total"]) for i in items] == [
        (item["quantity"], item["amount"]) for item in order["items"]]

    page = _pay_on_the_page(session)
    assert page.status_code in (302, 303) and order["id"] in page.headers["Location"]
    settle(client, emulator)
    paid = _order(client, shopper, order["id"])
    assert paid["status"] == "paid" and paid["payment"]["payment_intent_id"].startswith("pi_")
    assert paid["charge_type"] == ("destination" if vendors == 1 else "separate_transfers")
    assert all(s["stripe_transfer_id"] for s in paid["splits"])
    intent = emu(emulator, "GET", f"/v1/payment_intents/{paid['payment']['payment_intent_id']}")
    if vendors == 1:
        assert intent["transfer_data"]["destination"] == sellers[0].stripe_account_id
        assert intent["application_fee_amount"] == paid["splits"][0]["platform_fee"]
    else:
        assert intent["transfer_group"] == f"order_{order['id']}"
    assert_balances_match(emulator, order["id"])
    db.session.rollback()
    assert db.session.scalar(select(CheckoutSession.status)) == "complete"
    # The page again pays nothing more.
    _pay_on_the_page(session)
    settle(client, emulator)
    assert_balances_match(emulator, order["id"])


def test_the_sessions_events_duplicated_and_shuffled_pay_once(client, shopper, emulator):
    sellers = [onboarded_vendor(emulator) for _ in range(3)]
    order = order_for(client, shopper, sellers, [1200, 800, 450])
    session = _open(client, shopper, order["id"])
    _pay_on_the_page(session)
    emu(emulator, "POST", "/_emulator/settle")
    events = _events(emulator)
    assert {"checkout.session.completed", "payment_intent.succeeded"} <= {e["type"] for e in events}
    shuffled = events + events
    random.Random(7).shuffle(shuffled)
    for event in shuffled:
        assert deliver(client, event).status_code == 200
    deliver_events(client, emulator)
    db.session.rollback()
    assert _order(client, shopper, order["id"])["status"] == "paid"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    assert db.session.scalar(select(func.count()).select_from(JournalEntry).where(
        JournalEntry.kind == "charge")) == 1
    assert_balances_match(emulator, order["id"])


def test_the_payment_intent_succeeded_event_alone_pays_the_order(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [2000])
    _pay_on_the_page(_open(client, shopper, order["id"]))
    emu(emulator, "POST", "/_emulator/settle")
    for event in _events(emulator):
        if event["type"] != "checkout.session.completed":
            assert deliver(client, event).status_code == 200
    assert _order(client, shopper, order["id"])["status"] == "paid"
    assert_balances_match(emulator, order["id"])


def test_a_session_past_its_expiry_leaves_the_order_payable(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [2000])
    session = _open(client, shopper, order["id"])
    declined = _pay_on_the_page(session, payment_method="pm_card_chargeDeclined")
    assert declined.status_code < 500
    emu(emulator, "POST", "/_emulator/clock/advance", seconds=25 * 3600)
    settle(client, emulator)
    db.session.rollback()
    assert db.session.scalar(select(CheckoutSession.status)) == "expired"
    assert _order(client, shopper, order["id"])["status"] == "pending_payment"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
    assert stripe_balance(emulator, vendor.stripe_account_id) == 0


def test_after_an_expired_session_another_one_pays(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [2000])
    first = _open(client, shopper, order["id"])
    emu(emulator, "POST", f"/v1/checkout/sessions/{first['checkout_session_id']}/expire")
    settle(client, emulator)
    db.session.rollback()
    assert db.session.scalar(select(CheckoutSession.status)) == "expired"
    second = _open(client, shopper, order["id"])
    assert second["checkout_session_id"] != first["checkout_session_id"]
    _pay_on_the_page(first)  # the expired one takes nothing
    _pay_on_the_page(second)
    settle(client, emulator)
    assert _order(client, shopper, order["id"])["status"] == "paid"
    assert_balances_match(emulator, order["id"])


def test_one_way_to_pay_at_a_time(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    by_intent = order_for(client, shopper, [vendor], [1000])
    assert client.post(f"/api/orders/{by_intent['id']}/payment-intent", headers=shopper).status_code == 201
    refused = client.post(f"/api/orders/{by_intent['id']}/checkout-session", headers=shopper)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "payment_intent_exists"

    switched = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    session = _open(client, shopper, switched["id"])
    confirmed = client.post(f"/api/orders/{switched['id']}/confirm", json={"payment_method": "pm_card_visa"},
                            headers=shopper)
    assert confirmed.get_json()["order_status"] == "paid"
    stripe_session = emu(emulator, "GET", f"/v1/checkout/sessions/{session['checkout_session_id']}")
    assert stripe_session["status"] == "expired"
    _pay_on_the_page(session)  # too late: the session takes no money
    settle(client, emulator)
    assert_balances_match(emulator, switched["id"])

    completed = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    _pay_on_the_page(_open(client, shopper, completed["id"]))  # paid, its events not yet delivered
    late = client.post(f"/api/orders/{completed['id']}/payment-intent", headers=shopper)
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "checkout_completed"
    canceled = client.post(f"/api/orders/{completed['id']}/cancel", headers=shopper)
    assert canceled.status_code == 409
    settle(client, emulator)
    assert _order(client, shopper, completed["id"])["status"] == "paid"
    assert_balances_match(emulator, completed["id"])


def test_canceling_the_order_expires_its_session(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [1000])
    session = _open(client, shopper, order["id"])
    assert client.post(f"/api/orders/{order['id']}/cancel", headers=shopper).status_code == 200
    assert emu(emulator, "GET", f"/v1/checkout/sessions/{session['checkout_session_id']}")["status"] == "expired"
    assert client.post(f"/api/orders/{order['id']}/checkout-session", headers=shopper).status_code == 409


def test_a_session_opened_while_the_order_is_canceled_stops_the_cancel(client, shopper, emulator, monkeypatch):
    """A second tab opens a hosted checkout between the cancel's expiry of open sessions and
    its update of the order: the cancel is refused (409, try again), the order stays payable
    with its stock reserved, and the session pays it as usual."""
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [1000])
    from marketplace.auth.models import User
    from marketplace.catalog.models import Product
    from marketplace.orders.models import Order
    from marketplace.payments import checkout

    row = db.session.get(Order, order["id"])
    product_id, user_id = row.items[0].product_id, row.shopper_id
    stock = db.session.get(Product, product_id).stock
    original, opened = checkout.close_open, {}

    def close_open_then_another_tab_opens_a_session(order_id):
        original(order_id)
        opened["session"] = checkout.open_session(db.session.get(User, user_id), order_id)[0].url

    monkeypatch.setattr(checkout, "close_open", close_open_then_another_tab_opens_a_session)
    refused = client.post(f"/api/orders/{order['id']}/cancel", headers=shopper)
    monkeypatch.setattr(checkout, "close_open", original)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "checkout_session_open"
    db.session.rollback()
    assert db.session.get(Order, order["id"]).status == "pending_payment"
    assert db.session.get(Product, product_id).stock == stock
    _pay_on_the_page({"url": opened["session"]})
    settle(client, emulator)
    assert _order(client, shopper, order["id"])["status"] == "paid"
    assert_balances_match(emulator, order["id"])


def test_a_suspended_vendors_order_cannot_open_a_hosted_checkout(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [1000])
    from marketplace.vendors.models import Vendor

    row = db.session.get(Vendor, vendor.id)
    row.suspended, row.status = True, "suspended"
    db.session.commit()
    refused = client.post(f"/api/orders/{order['id']}/checkout-session", headers=shopper)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "vendor_suspended"
    assert stripe_balance(emulator, vendor.stripe_account_id) == 0
