"""A paid, refunded and disputed journey leaves an audit entry at every money-moving step."""
import pytest
from sqlalchemy import select

from marketplace import audit
from marketplace.extensions import db
from marketplace.payments.disputes import handle_dispute_created
from marketplace.payments.models import Payment
from tests.integration.test_audit import entries
from tests.payments_helpers import emu, onboarded_vendor, order_for, pay

pytestmark = pytest.mark.needs("emulator")


def test_a_paid_refunded_and_disputed_journey_is_audited(client, auth, emulator):
    """Every money-moving step of a journey leaves an entry, system ones included."""
    _, shopper = auth.user("shopper")
    _, admin = auth.user("admin")
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [2000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    refund = client.post(f"/api/orders/{order['id']}/refunds", headers=admin,
                         json={"amount": 500, "reason": "requested_by_customer"})
    assert refund.status_code == 201
    disputed = order_for(client, shopper, [vendor], [1500])
    assert pay(client, shopper, disputed["id"], "pm_card_createDispute", emulator=emulator).status_code == 200
    db.session.rollback()
    intent = db.session.scalar(select(Payment.payment_intent_id).where(Payment.order_id == disputed["id"]))
    charge = emu(emulator, "GET", f"/v1/payment_intents/{intent}")["latest_charge"]
    dispute = emu(emulator, "GET", "/v1/disputes", charge=charge)["data"][0]
    handle_dispute_created(dispute)
    actions = [e.action for e in entries()]
    for expected in ("order.created", "payment_intent.created", "payment.succeeded", "refund.created",
                     "dispute.opened"):
        assert expected in actions, (expected, actions)
    [refund_entry] = entries("refund.created")
    assert refund_entry.amount == 500 and refund_entry.object_id == refund.get_json()["id"]
    assert entries("dispute.opened")[0].actor == audit.SYSTEM
