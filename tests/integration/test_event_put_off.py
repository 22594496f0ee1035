"""payment_intent.succeeded racing its confirmation's answer: put off a moment (no attempt
spent), it needs no read of Stripe; an event whose answer never came is still booked."""
from datetime import timedelta

import pytest
import requests
from rq import SimpleWorker
from sqlalchemy import select

from marketplace import outbox, queue
from marketplace.extensions import db
from marketplace.outbox import OutboxMessage
from marketplace.payments.models import Payment
from marketplace.webhooks.models import WebhookEvent
from tests.integration.test_async_capture import _calls, _events
from tests.payments_helpers import emu, onboarded_vendor, order_for
from tests.webhook_helpers import deliver

pytestmark = pytest.mark.needs("emulator", "redis")


def _drain() -> None:
    """What `flask worker` does: relay the outbox, then run what is queued."""
    outbox.relay()
    SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)


def _row(event_id: str) -> WebhookEvent:
    db.session.rollback()
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event_id))


def _succeeded_at_stripe(client, shopper, emulator) -> tuple[str, dict]:
    """A PaymentIntent confirmed at Stripe whose confirmation's answer the app has not recorded."""
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2000])
    intent = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper).get_json()
    emu(emulator, "POST", f"/v1/payment_intents/{intent['payment_intent_id']}/confirm", payment_method="pm_card_visa")
    [succeeded] = _events(emulator, "payment_intent.succeeded")
    requests.delete(f"{emulator.url}/_emulator/requests", timeout=10).raise_for_status()
    return order["id"], succeeded


def test_a_fresh_success_event_is_put_off_then_needs_no_read_once_the_answer_is_in(client, shopper, emulator):
    order_id, succeeded = _succeeded_at_stripe(client, shopper, emulator)
    assert deliver(client, succeeded).status_code == 200
    _drain()
    row = _row(succeeded["id"])
    assert (row.status, row.attempts) == ("received", 0) and row.next_attempt_at is not None
    assert _calls(emulator) == {}  # no read of Stripe
    from marketplace.payments import service

    intent = emu(emulator, "GET", f"/v1/payment_intents/{succeeded['data']['object']['id']}",
                 **{"expand[]": service.SUCCESS_EXPAND})
    service.apply_succeeded(intent)  # the confirmation's answer, as the request records it
    requests.delete(f"{emulator.url}/_emulator/requests", timeout=10).raise_for_status()
    _due_later(row.id)
    _drain()
    assert (_row(succeeded["id"]).status, _row(succeeded["id"]).attempts) == ("processed", 1)
    assert _calls(emulator) == {}


def test_a_success_event_whose_answer_never_came_is_booked_after_the_wait(client, shopper, emulator):
    order_id, succeeded = _succeeded_at_stripe(client, shopper, emulator)
    assert deliver(client, succeeded).status_code == 200
    _drain()
    row = _row(succeeded["id"])
    assert row.status == "received"
    _due_later(row.id)
    _drain()
    assert _row(succeeded["id"]).status == "processed"
    db.session.rollback()
    assert db.session.scalar(select(Payment.status).where(Payment.order_id == order_id)) == "succeeded"
    assert _calls(emulator) == {"GET /v1/payment_intents/<pid>": 1}


def _due_later(row_id: str) -> None:
    """The wait has passed: the event's retry is due and it is no longer fresh."""
    db.session.rollback()
    row = db.session.get(WebhookEvent, row_id)
    row.received_at -= timedelta(seconds=10)
    for message in db.session.scalars(select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))):
        message.available_at -= timedelta(seconds=10)
    db.session.commit()
