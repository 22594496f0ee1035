"""Orders left unpaid past ORDER_PAYMENT_WINDOW_HOURS: canceled by the worker, stock released once."""
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from marketplace.audit import AuditEntry
from marketplace.catalog.models import Product
from marketplace.database import utcnow
from marketplace.errors import Conflict
from marketplace.extensions import db
from marketplace.orders import service
from marketplace.orders.models import Order
from marketplace.payments import service as payments
from tests.payments_helpers import emu, onboarded_vendor, order_for, pay

pytestmark = pytest.mark.needs("emulator")


def _placed_hours_ago(order_id: str, hours: float) -> None:
    db.session.execute(update(Order).where(Order.id == order_id)
                       .values(created_at=utcnow() - timedelta(hours=hours)))
    db.session.commit()


def _stock(order: dict) -> int:
    db.session.rollback()
    return db.session.get(Product, order["items"][0]["product_id"]).stock


def _status(order: dict) -> str:
    db.session.rollback()
    return db.session.get(Order, order["id"]).status


def test_unpaid_orders_past_the_window_are_canceled_and_their_stock_released_once(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    never_paid = order_for(client, shopper, [vendor], [1000], [3])
    declined = order_for(client, shopper, [vendor], [1500], [2])
    assert pay(client, shopper, declined["id"], "pm_card_chargeDeclinedInsufficientFunds", emulator=emulator).status_code == 402
    recent = order_for(client, shopper, [vendor], [700], [4])
    paid = order_for(client, shopper, [vendor], [900], [1])
    assert pay(client, shopper, paid["id"], emulator=emulator).status_code == 200
    for order, hours in ((never_paid, 26), (declined, 25), (paid, 25)):
        _placed_hours_ago(order["id"], hours)
    _placed_hours_ago(recent["id"], 23)
    assert (_stock(never_paid), _stock(declined), _stock(recent)) == (47, 48, 46)

    assert service.expire_unpaid_orders(limit=1) == 1  # the oldest first
    assert _status(never_paid) == "canceled" and _status(declined) == "payment_failed"
    assert service.expire_unpaid_orders() == 1

    assert [_status(o) for o in (never_paid, declined, recent, paid)] == [
        "canceled", "canceled", "pending_payment", "paid"]
    assert (_stock(never_paid), _stock(declined), _stock(recent), _stock(paid)) == (50, 50, 46, 49)
    intent_id = db.session.get(Order, declined["id"]).payment_intent_id
    assert emu(emulator, "GET", f"/v1/payment_intents/{intent_id}")["status"] == "canceled"
    audited = db.session.execute(
        select(AuditEntry.object_id, AuditEntry.actor).where(AuditEntry.action == "order.expired")).all()
    assert sorted(audited) == sorted([(never_paid["id"], "system"), (declined["id"], "system")])
    splits = client.get(f"/api/orders/{declined['id']}", headers=shopper).get_json()["splits"]
    assert [s["status"] for s in splits] == ["canceled"]

    # The canceled PaymentIntent's event changes nothing more; a second run finds nothing.
    payments.handle_payment_intent_canceled({"id": intent_id})
    assert service.expire_unpaid_orders() == 0
    assert (_stock(never_paid), _stock(declined)) == (50, 50)


def test_an_order_stripe_already_charged_is_left_to_its_payment_events(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000], [2])
    intent = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper).get_json()
    # Paid at Stripe, its success not yet processed here.
    emu(emulator, "POST", f"/v1/payment_intents/{intent['payment_intent_id']}/confirm", payment_method="pm_card_visa")
    _placed_hours_ago(order["id"], 48)

    assert service.expire_unpaid_orders() == 0

    assert _status(order) == "pending_payment" and _stock(order) == 48
    payments.handle_payment_intent_succeeded({"id": intent["payment_intent_id"]})
    assert _status(order) == "paid" and _stock(order) == 48


def test_an_order_that_got_a_payment_intent_after_it_was_read_is_not_canceled(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000], [2])
    intent = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper).get_json()

    with pytest.raises(Conflict):
        service._cancel(order["id"], None, "order.expired")  # read before the PaymentIntent existed

    assert _status(order) == "pending_payment" and _stock(order) == 48
    assert emu(emulator, "GET", f"/v1/payment_intents/{intent['payment_intent_id']}")["status"] != "canceled"


def test_the_window_comes_from_config(client, shopper, emulator, stripe_app):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    _placed_hours_ago(order["id"], 3)
    assert service.expire_unpaid_orders() == 0
    stripe_app.config["ORDER_PAYMENT_WINDOW_HOURS"] = 2
    try:
        assert service.expire_unpaid_orders() == 1
    finally:
        stripe_app.config["ORDER_PAYMENT_WINDOW_HOURS"] = 24
    assert _status(order) == "canceled"


def test_the_expiry_is_scheduled_every_quarter_hour():
    from marketplace import queue
    from marketplace.worker import SCHEDULE

    (entry,) = [e for e in SCHEDULE if e.name == "expire-unpaid-orders"]
    assert entry.cron == "*/15 * * * *" and callable(queue.resolve(entry.job))
