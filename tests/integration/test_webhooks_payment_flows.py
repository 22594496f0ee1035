"""Payment flows driven by real signed webhooks: held, then shuffled or duplicated, then sent again.

Each test runs its flow twice on the same emulator: once with in-order delivery, once with
chaotic delivery, and the two orders must end in the same state (and Stripe's balances
must equal the ledger's). Steps that only Stripe finishes (3-D Secure, disputes) reach us
by webhook alone, so the webhooks are what moves the state.
"""
import time

import pytest
from sqlalchemy import select

from marketplace import queue
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.orders.models import Order
from marketplace.payments.models import Dispute, Payment, Refund
from marketplace.vendors.models import Vendor
from tests.integration.test_webhooks_flows import assert_every_event_done
from tests.payments_helpers import assert_balances_match, emu, onboarded_vendor, order_for, pay
from tests.webhook_flows import _drain, chaos, hooked_app, hooked_emulator, served_switch, settle  # noqa: F401

# (jobs, delivery): inline jobs run inside the webhook request; RQ jobs after all deliveries.
MODES = pytest.mark.parametrize(
    "hooked_app,mode", [("inline", "duplicate"), ("inline", "shuffle"), ("rq", "shuffle")],
    indirect=["hooked_app"],
)


@pytest.fixture
def app(hooked_app):
    return hooked_app


def order_state(order_id: str) -> dict:
    """What an order ended as, without ids: statuses, amounts and every vendor's ledger balance."""
    db.session.rollback()
    order = db.session.get(Order, order_id)
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order_id))
    refunds = db.session.scalars(select(Refund).where(Refund.order_id == order_id))
    disputes = db.session.scalars(select(Dispute).where(Dispute.order_id == order_id))
    return {
        "order": order.status,
        "payment": payment and (payment.status, payment.amount, payment.stripe_fee, bool(payment.stripe_charge_id)),
        "splits": [(s.status, s.subtotal, s.platform_fee, s.vendor_net, bool(s.stripe_transfer_id))
                   for s in order.splits],
        "vendor_balances": [ledger.balance(f"vendor:{s.vendor_id}:stripe_balance", order.currency)
                            for s in order.splits],
        "refunds": sorted((r.status, r.amount) for r in refunds),
        "disputes": sorted((d.status, d.recovery, d.amount) for d in disputes),
    }


def accounts():
    db.session.rollback()
    return list(db.session.scalars(select(Vendor.stripe_account_id).where(Vendor.stripe_account_id.is_not(None))))


def both_ways(emulator, url, mode, flow, paid: bool = True):
    """(in-order state, chaotic state) of the same flow run twice."""
    first = flow()
    settle(emulator)
    second = chaos(emulator, url, mode, flow, accounts)
    assert_every_event_done()
    if paid:  # money moved: Stripe's balances equal the ledger's
        assert_balances_match(emulator, first)
        assert_balances_match(emulator, second)
    return order_state(first), order_state(second)


def wait_for_transfers(order_id: str, timeout: float = 10) -> None:
    """Separate transfers are made by a job, perhaps in a webhook's thread: wait for them."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not queue.is_inline():
            _drain()
        db.session.rollback()
        if all(s.stripe_transfer_id for s in db.session.get(Order, order_id).splits):
            return
        time.sleep(0.02)
    raise AssertionError("transfers were not made")


def authenticated_payment(client, shopper, emulator, vendor_count: int, outcome: str = "succeed"):
    """A flow: an order paid with 3-D Secure, finished at Stripe; the outcome reaches us by webhook."""

    def flow():
        vendors = [onboarded_vendor(emulator) for _ in range(vendor_count)]
        order = order_for(client, shopper, vendors, [1500 + 250 * i for i in range(vendor_count)])
        confirmed = pay(client, shopper, order["id"], "pm_card_authenticationRequired")
        assert confirmed.status_code == 200 and confirmed.get_json()["status"] == "requires_action"
        intent = confirmed.get_json()["payment_intent_id"]
        emu(emulator, "POST", f"/_emulator/payment_intents/{intent}/authenticate", outcome=outcome)
        return order["id"]

    return flow


@MODES
def test_one_vendor_payment_success(client, shopper, hooked_emulator, served_switch, mode):
    flow = authenticated_payment(client, shopper, hooked_emulator, 1)
    in_order, chaotic = both_ways(hooked_emulator, served_switch[1], mode, flow)
    assert in_order == chaotic
    assert in_order["order"] == "paid" and in_order["payment"][0] == "succeeded"
    assert in_order["splits"][0][0] == "transferred"


@MODES
def test_three_vendor_payment_success(client, shopper, hooked_emulator, served_switch, mode):
    flow = authenticated_payment(client, shopper, hooked_emulator, 3)
    in_order, chaotic = both_ways(hooked_emulator, served_switch[1], mode, flow)
    assert in_order == chaotic
    assert in_order["order"] == "paid"
    assert [s[0] for s in in_order["splits"]] == ["transferred"] * 3
    assert in_order["vendor_balances"] == [s[3] for s in in_order["splits"]]


@MODES
def test_payment_failure(client, shopper, hooked_emulator, served_switch, mode):
    flow = authenticated_payment(client, shopper, hooked_emulator, 1, outcome="fail")
    in_order, chaotic = both_ways(hooked_emulator, served_switch[1], mode, flow, paid=False)
    assert in_order == chaotic
    assert in_order["order"] == "payment_failed" and in_order["payment"][0] == "requires_payment_method"


@MODES
def test_refund(client, shopper, admin, hooked_emulator, served_switch, mode, pg_only):
    # PostgreSQL only: the refund request and the charge.refunded webhook (inline, in another
    # thread) complete the same refund at once, and only row locks serialize them.
    def flow():
        vendors = [onboarded_vendor(hooked_emulator) for _ in range(2)]
        order = order_for(client, shopper, vendors, [2000, 3000])
        assert pay(client, shopper, order["id"]).status_code == 200
        wait_for_transfers(order["id"])
        refund = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 1200, "reason": "requested_by_customer"},
                             headers=admin)
        assert refund.status_code == 201, refund.get_json()
        return order["id"]

    in_order, chaotic = both_ways(hooked_emulator, served_switch[1], mode, flow)
    assert in_order == chaotic
    assert in_order["order"] == "partially_refunded" and in_order["refunds"] == [("succeeded", 1200)]


@pytest.mark.parametrize(
    "hooked_app,mode,outcome",
    [("inline", "duplicate", "won"), ("inline", "shuffle", "lost"), ("rq", "shuffle", "won"), ("rq", "duplicate", "lost")],
    indirect=["hooked_app"],
)
def test_dispute(client, shopper, hooked_emulator, served_switch, mode, outcome):
    def flow():
        vendor = onboarded_vendor(hooked_emulator)
        order = order_for(client, shopper, [vendor], [4000])
        assert pay(client, shopper, order["id"], "pm_card_createDispute").status_code == 200
        emu(hooked_emulator, "POST", "/_emulator/settle")  # the cardholder disputes it a moment later
        charge = db.session.scalar(select(Payment.stripe_charge_id).where(Payment.order_id == order["id"]))
        disputes = emu(hooked_emulator, "GET", "/v1/disputes", limit=100)["data"]
        dispute = next(d for d in disputes if d["charge"] == charge)
        emu(hooked_emulator, "POST", f"/_emulator/disputes/{dispute['id']}/close", outcome=outcome)
        return order["id"]

    in_order, chaotic = both_ways(hooked_emulator, served_switch[1], mode, flow)
    assert in_order == chaotic
    assert in_order["disputes"][0][0] == outcome
