"""A refund that fails after Stripe made it: the shopper got nothing, so the vendors get back
what it took from them, once, and the ledger still matches Stripe to the cent."""
import pytest
import requests
from sqlalchemy import func, select

from marketplace import outbox
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.movements import engine
from marketplace.movements.models import Movement
from marketplace.payments import refunds
from marketplace.payments.models import Refund, RefundAllocation
from marketplace.vendors.models import Vendor
from tests.payments_helpers import assert_balances_match, emu, paid_order, stripe_balance
from tests.reconciliation_helpers import emulator_now, reconcile

pytestmark = pytest.mark.needs("emulator")


def refund(client, admin, order_id, amount):
    response = client.post(f"/api/orders/{order_id}/refunds", json={"reason": "requested_by_customer", "amount": amount},
                           headers=admin)
    return response


def vendor_balances(emulator, sellers) -> list[int]:
    db.session.rollback()
    return [stripe_balance(emulator, db.session.get(Vendor, v.id).stripe_account_id) for v in sellers]


def fee_revenue() -> int:
    db.session.rollback()
    return ledger.balance("platform:fee_revenue", "usd")


def fail_at_stripe(emulator, stripe_refund_id) -> str:
    """The card network gives the refund back; Stripe's refund.failed reaches the handler."""
    emu(emulator, "POST", f"/_emulator/refunds/{stripe_refund_id}/fail")
    status = refunds.handle_refund_failed({"id": stripe_refund_id})
    outbox.relay()  # the retransfer job (inline here)
    return status


def retransfers(emulator, account) -> list[dict]:
    transfers = emu(emulator, "GET", "/v1/transfers", destination=account, limit=100)["data"]
    return [t for t in transfers if t["metadata"].get("refund_id")]


def test_a_destination_refund_that_fails_gives_the_vendor_back_its_reversal(client, shopper, admin, emulator):
    order, sellers = paid_order(client, shopper, emulator, [1000], vendors=1)
    before, fees_before = vendor_balances(emulator, sellers), fee_revenue()
    made = refund(client, admin, order["id"], 400).get_json()
    assert made["status"] == "succeeded" and made["allocations"][0]["stripe_transfer_reversal_id"]
    assert vendor_balances(emulator, sellers) == [before[0] - 360]  # 400 back less the 40 fee returned

    assert fail_at_stripe(emulator, made["stripe_refund_id"]) == "failed"
    assert vendor_balances(emulator, sellers) == before and fee_revenue() == fees_before
    [retransfer] = retransfers(emulator, sellers[0].stripe_account_id)
    alloc = db.session.scalar(select(RefundAllocation))
    assert (retransfer["amount"], alloc.stripe_retransfer_id) == (360, retransfer["id"])
    after = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert after["status"] == "paid" and after["splits"][0]["refunded"] == 0
    assert_balances_match(emulator, order["id"])

    # The event again, the job again: nothing moves twice.
    assert refunds.handle_refund_failed({"id": made["stripe_refund_id"]}) == "failed"
    assert refunds.retransfer_failed(made["id"]) == 0
    outbox.relay()
    assert len(retransfers(emulator, sellers[0].stripe_account_id)) == 1
    assert vendor_balances(emulator, sellers) == before
    assert_balances_match(emulator, order["id"])
    # The money is refundable again. Stripe's reversal of a new full refund can only take what
    # is left of the original transfer (600 of 1000); the 360 retransferred is reversed too.
    again = refund(client, admin, order["id"], 1000)
    assert again.status_code == 201 and again.get_json()["status"] == "succeeded"
    assert vendor_balances(emulator, sellers) == [0] and fee_revenue() == fees_before + 100
    assert_balances_match(emulator, order["id"])
    run = reconcile(client, admin, emulator_now(emulator) - 3600, emulator_now(emulator) + 60)
    assert run["counts"]["matched"] > 0
    assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
        "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}


def test_separate_charges_refund_that_fails_gives_every_vendor_back_its_share(client, shopper, admin, emulator):
    order, sellers = paid_order(client, shopper, emulator, [1000, 2001], vendors=2)
    before, fees_before = vendor_balances(emulator, sellers), fee_revenue()
    made = refund(client, admin, order["id"], 1501).get_json()
    assert made["status"] == "succeeded" and all(a["stripe_transfer_reversal_id"] for a in made["allocations"])
    taken = [a["amount"] - a["platform_fee_refunded"] for a in made["allocations"]]
    assert sum(before) - sum(vendor_balances(emulator, sellers)) == sum(taken) > 0
    assert fee_revenue() > fees_before  # the fee returned with the refund (a credit balance shrinks)

    assert fail_at_stripe(emulator, made["stripe_refund_id"]) == "failed"
    assert vendor_balances(emulator, sellers) == before and fee_revenue() == fees_before
    moved = sorted(t["amount"] for v in sellers for t in retransfers(emulator, v.stripe_account_id))
    assert moved == sorted(taken)
    assert stripe_balance(emulator) == ledger.balance("platform:stripe_balance", "usd")
    assert_balances_match(emulator, order["id"])
    assert refunds.retransfer_failed(made["id"]) == 0


def test_a_refund_failing_before_its_reversals_takes_nothing_from_the_vendors(client, shopper, admin, emulator):
    order, sellers = paid_order(client, shopper, emulator, [1000, 2000], vendors=2)
    before, fees_before = vendor_balances(emulator, sellers), fee_revenue()
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers/", mode="error", count=20)
    try:
        response = refund(client, admin, order["id"], 900)
    finally:
        requests.delete(f"{emulator.url}/_emulator/faults", timeout=10)
    # refunded at Stripe, the reversals not made yet: committed, so 201 with the refund pending
    assert response.status_code == 201 and response.get_json()["status"] == "pending"
    db.session.rollback()
    row = db.session.scalar(select(Refund))
    assert row.stripe_refund_id and not any(a.stripe_transfer_reversal_id for a in row.allocations)

    assert fail_at_stripe(emulator, row.stripe_refund_id) == "failed"
    _due_now()
    engine.sweep()  # the pending reversals are never made now
    assert refunds.complete_refund(row.id) == "failed"
    assert vendor_balances(emulator, sellers) == before and fee_revenue() == fees_before
    assert all(retransfers(emulator, v.stripe_account_id) == [] for v in sellers)
    assert db.session.scalar(select(func.count()).select_from(RefundAllocation)
                             .where(RefundAllocation.stripe_transfer_reversal_id.is_not(None))) == 0
    assert_balances_match(emulator, order["id"])


def test_completing_a_refund_already_made_reads_it_back_instead_of_creating_it(client, shopper, admin, emulator,
                                                                              monkeypatch):
    """Its idempotency key expires after 24 h: a late retry must never make a second refund."""
    from marketplace import stripe_gateway

    order, sellers = paid_order(client, shopper, emulator, [1000, 2000], vendors=2)
    before = vendor_balances(emulator, sellers)
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers/", mode="error", count=20)
    try:
        assert refund(client, admin, order["id"], 900).status_code == 201
    finally:
        requests.delete(f"{emulator.url}/_emulator/faults", timeout=10)

    def no_second_refund(*args, **kwargs):
        raise AssertionError("the refund was created again")

    monkeypatch.setattr(stripe_gateway, "create_refund", no_second_refund)
    db.session.rollback()
    row = db.session.scalar(select(Refund))
    _due_now(hours=25)  # its key may have expired: the movement looks before it sends
    assert refunds.complete_refund(row.id) == "succeeded"
    assert sum(before) - sum(vendor_balances(emulator, sellers)) == sum(a.reversal_amount for a in row.allocations)
    charge = emu(emulator, "GET", f"/v1/refunds/{row.stripe_refund_id}")["charge"]
    assert len(emu(emulator, "GET", "/v1/refunds", charge=charge)["data"]) == 1
    assert_balances_match(emulator, order["id"])


def _due_now(hours: float = 0) -> None:
    """Every unfinished movement due now (and first sent `hours` ago)."""
    from datetime import timedelta

    from marketplace.database import utcnow

    for movement in db.session.scalars(select(Movement).where(Movement.status.in_(("planned", "unknown")))):
        movement.next_attempt_at = utcnow() - timedelta(seconds=1)
        if hours and movement.first_sent_at:
            movement.first_sent_at = utcnow() - timedelta(hours=hours)
    db.session.commit()
