"""Disputes through the emulator: the platform is debited, vendors' shares recovered, given back when won."""
import pytest
from sqlalchemy import select

from marketplace import outbox
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.payments import disputes
from marketplace.payments.models import Dispute
from tests.payments_helpers import CARD_ONLY, emu, onboarded_vendor, order_for, pay, stripe_balance

pytestmark = pytest.mark.needs("emulator")


def disputed_order(client, auth, emulator, prices, vendors):
    shopper = auth.headers("shopper")
    sellers = [onboarded_vendor(emulator) for _ in range(vendors)]
    order = order_for(client, shopper, sellers, prices)
    assert pay(client, shopper, order["id"], "pm_card_createDispute", emulator=emulator).status_code == 200
    [dispute] = emu(emulator, "GET", "/v1/disputes")["data"]
    return order, dispute, sellers, shopper


def ledger_agrees(emulator, vendors, currency="usd", platform_extra=0):
    db.session.rollback()
    assert stripe_balance(emulator) == ledger.balance("platform:stripe_balance", currency) + platform_extra
    for vendor in vendors:
        assert stripe_balance(emulator, vendor.stripe_account_id) == ledger.balance(f"vendor:{vendor.id}:stripe_balance", currency)


def status(client, shopper, order):
    return client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"]


def test_won_dispute_on_a_destination_charge(client, auth, emulator):
    order, dispute, vendors, shopper = disputed_order(client, auth, emulator, [2000], vendors=1)
    row = disputes.handle_dispute_created(dispute)
    disputes.handle_dispute_funds_withdrawn(dispute)  # the second event changes nothing
    outbox.relay()
    assert status(client, shopper, order) == "disputed" and row.status == "needs_response"
    assert stripe_balance(emulator, vendors[0].stripe_account_id) == 0  # its 1800 recovered
    assert ledger.balance("platform:disputes", "usd") == 2000
    ledger_agrees(emulator, vendors)

    # The platform pays the dispute fee: the re-transfer needs funds from other sales.
    other_sales = top_up(emulator, 5000)
    emu(emulator, "POST", f"/_emulator/disputes/{dispute['id']}/close", outcome="won")
    closed = disputes.handle_dispute_closed(dispute)
    disputes.handle_dispute_funds_reinstated(dispute)
    outbox.relay()
    assert closed.status == "won" and status(client, shopper, order) == "paid"
    assert stripe_balance(emulator, vendors[0].stripe_account_id) == 1800
    assert ledger.balance("platform:disputes", "usd") == 0
    recovery = db.session.get(Dispute, closed.id).recoveries[0]
    assert recovery.stripe_transfer_reversal_id.startswith("trr_") and recovery.stripe_retransfer_id.startswith("tr_")
    ledger_agrees(emulator, vendors, platform_extra=other_sales)


def top_up(emulator, amount):
    """Another sale, outside this ledger, whose funds are available at once; returns its net."""
    intent = emu(emulator, "POST", "/v1/payment_intents", amount=amount, currency="usd",
                 payment_method="pm_card_bypassPending", confirm="true", capture_method="automatic",
                 **CARD_ONLY, **{"expand[]": "latest_charge.balance_transaction"})
    return intent["latest_charge"]["balance_transaction"]["net"]


def test_lost_dispute_on_separate_charges(client, auth, emulator):
    order, dispute, vendors, shopper = disputed_order(client, auth, emulator, [1000, 2000, 3000], vendors=3)
    disputes.handle_dispute_created(dispute)
    outbox.relay()
    for vendor in vendors:
        assert stripe_balance(emulator, vendor.stripe_account_id) == 0
    emu(emulator, "POST", f"/_emulator/disputes/{dispute['id']}/close", outcome="lost")
    closed = disputes.handle_dispute_closed(dispute)
    outbox.relay()
    assert closed.status == "lost" and closed.closed_at is not None
    assert status(client, shopper, order) == "disputed"
    # The platform lost the charge and the dispute fee, and got the vendors' nets back.
    assert stripe_balance(emulator) == 6000 - 204 - 5400 - 6000 - 1500 + 5400
    ledger_agrees(emulator, vendors)


def test_platform_recovery_leaves_vendors_alone(client, auth, emulator, stripe_app):
    stripe_app.config["DISPUTE_RECOVERY"] = "platform"
    order, dispute, vendors, shopper = disputed_order(client, auth, emulator, [1000, 1000], vendors=2)
    row = disputes.handle_dispute_created(dispute)
    outbox.relay()
    assert row.recovery == "platform" and row.recoveries == []
    assert [stripe_balance(emulator, v.stripe_account_id) for v in vendors] == [900, 900]
    emu(emulator, "POST", f"/_emulator/disputes/{dispute['id']}/close", outcome="won")
    disputes.handle_dispute_closed(dispute)
    outbox.relay()
    assert status(client, shopper, order) == "paid"
    assert db.session.scalar(select(Dispute.status)) == "won"
    ledger_agrees(emulator, vendors)


def test_a_disputed_order_is_not_refunded(client, auth, emulator):
    order, dispute, vendors, shopper = disputed_order(client, auth, emulator, [1000], vendors=1)
    disputes.handle_dispute_created(dispute)
    response = client.post(f"/api/orders/{order['id']}/refunds", json={"reason": "fraudulent"}, headers=auth.headers("admin"))
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "order_not_paid"
