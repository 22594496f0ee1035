"""End to end through the emulator: a month of money reconciled to zero, then money moved behind our back."""
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from marketplace import outbox
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.ledger.service import Line
from marketplace.payments import disputes
from marketplace.payments.models import Payment
from tests.payments_helpers import emu, onboarded_vendor, order_for, pay
from tests.reconciliation_helpers import (
    all_balance_transactions, delete_entry, emulator_now, inflate_entry, reconcile,
)

pytestmark = pytest.mark.needs("emulator")

payouts_helpers = pytest.importorskip("tests.payouts_helpers")


@pytest.fixture(autouse=True)
def _emulator_clock(monkeypatch, emulator):
    payouts_helpers.follow_emulator_clock(monkeypatch, emulator)


def _charge_of(order_id: str) -> str:
    return db.session.scalar(select(Payment.stripe_charge_id).where(Payment.order_id == order_id))


def _open_dispute(emulator, order_id: str) -> None:
    charge = _charge_of(order_id)
    dispute = next(d for d in emu(emulator, "GET", "/v1/disputes", limit=100)["data"] if d["charge"] == charge)
    disputes.handle_dispute_created(dispute)
    outbox.relay()  # the recovery reversal job, inline


def _deliver_payout_events(emulator, sellers) -> None:
    from marketplace.webhooks import handlers

    for seller in sellers:
        for type_ in ("payout.paid", "payout.failed"):
            for event in emu(emulator, "GET", "/v1/events", account=seller.stripe_account_id, type=type_)["data"]:
                handlers.dispatch(event)


def _sell_refund_dispute_and_pay_out(client, emulator, shopper, admin):
    from marketplace.payouts import service as payouts

    alice, bob = onboarded_vendor(emulator), onboarded_vendor(emulator)
    carol = payouts_helpers.vendor(emulator, bank=payouts_helpers.FAILING_BANK)
    solo = order_for(client, shopper, [alice], [5000])  # destination charge
    mixed = order_for(client, shopper, [alice, bob], [3000, 2000])  # separate charges and transfers
    third = order_for(client, shopper, [carol], [4000])
    disputed = order_for(client, shopper, [bob], [2500])
    for order in (solo, mixed, third):
        assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    assert pay(client, shopper, disputed["id"], "pm_card_createDispute", emulator=emulator).status_code == 200
    for order, amount in ((solo, 1200), (mixed, 1500)):
        refund = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": amount, "reason": "requested_by_customer"},
                             headers=admin)
        assert refund.status_code == 201, refund.get_json()
    _open_dispute(emulator, disputed["id"])
    payouts_helpers.advance(emulator, 8)  # past the hold
    run = payouts.run_now()
    assert run.status == "completed" and run.payouts_created == 3
    payouts_helpers.advance(emulator, 1.1)  # paid, and carol's failed
    _deliver_payout_events(emulator, (alice, bob, carol))
    return alice, bob, carol, solo, mixed


def test_reconciled_to_zero_then_each_movement_behind_our_back_is_reported(client, auth, emulator):
    shopper, admin = auth.headers("shopper"), auth.headers("admin")
    start = emulator_now(emulator) - 60
    alice, bob, carol, solo, mixed = _sell_refund_dispute_and_pay_out(client, emulator, shopper, admin)
    accounts = [None, alice.stripe_account_id, bob.stripe_account_id, carol.stripe_account_id]
    on_stripe = sum(len(all_balance_transactions(emulator, a)) for a in accounts)

    clean = reconcile(client, admin, start, emulator_now(emulator) + 60)
    assert clean["discrepancies"] == [], clean["discrepancies"]
    assert clean["status"] == "completed" and clean["accounts_checked"] == 4
    assert clean["counts"] == {"matched": on_stripe, "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}

    stray = emu(emulator, "POST", "/v1/transfers", amount=300, currency="usd", destination=alice.stripe_account_id,
                source_transaction=_charge_of(mixed["id"]))
    vendor_payout = emu(emulator, "POST", "/v1/payouts", account=alice.stripe_account_id, amount=200, currency="usd")
    quiet_refund = emu(emulator, "POST", "/v1/refunds", charge=_charge_of(solo["id"]), amount=100)
    platform_bts = all_balance_transactions(emulator)
    fee_bt = next(bt for bt in platform_bts if bt["type"] == "application_fee")
    charge_bt = next(bt for bt in platform_bts if bt["type"] == "charge" and bt["amount"] == 2500)
    delete_entry(fee_bt["id"])
    inflate_entry(charge_bt["id"], 100)
    when = emulator_now(emulator)
    ledger.post("charge", [Line("platform:stripe_balance", "usd", 999), Line("shopper:clearing", "usd", -999)],
                key="txn_phantom", occurred_at=datetime.fromtimestamp(when, timezone.utc),
                stripe_object_id="ch_phantom", stripe_balance_transaction_id="txn_phantom")
    db.session.commit()

    dirty = reconcile(client, admin, start, emulator_now(emulator) + 60)
    found = {(d["kind"], d["source_id"]) for d in dirty["discrepancies"]}
    assert found == {
        ("missing_in_ledger", stray["id"]),  # the platform's side of the stray transfer
        ("missing_in_ledger", stray["destination_payment"]),  # and alice's
        ("missing_in_ledger", vendor_payout["id"]),
        ("missing_in_ledger", quiet_refund["id"]),
        ("missing_in_ledger", fee_bt["source"]),
        ("amount_mismatch", charge_bt["source"]),
        ("missing_in_stripe", "ch_phantom"),
    }, dirty["discrepancies"]
    mismatch = next(d for d in dirty["discrepancies"] if d["kind"] == "amount_mismatch")
    assert (mismatch["expected_amount"], mismatch["actual_amount"]) == (2600, 2500)
    assert dirty["counts"] == {"matched": on_stripe - 2, "missing_in_ledger": 5, "missing_in_stripe": 1,
                               "amount_mismatch": 1}
    by_account = {d["source_id"]: d["stripe_account"] for d in dirty["discrepancies"]}
    assert by_account[vendor_payout["id"]] == alice.stripe_account_id and by_account[stray["id"]] is None


    # Every discrepancy, a page at a time, in the detail's order; by kind; errors.
    url = f"/api/admin/reconciliation-runs/{dirty['id']}/discrepancies"
    paged, page = [], 1
    while True:
        body = client.get(url, query_string={"page": page, "per_page": 3}, headers=admin).get_json()
        paged += body["data"]
        if page >= body["pagination"]["total_pages"]:
            break
        page += 1
    assert body["pagination"]["total_items"] == 7 and paged == dirty["discrepancies"]
    missing = client.get(url, query_string={"kind": "missing_in_stripe"}, headers=admin).get_json()["data"]
    assert [d["source_id"] for d in missing] == ["ch_phantom"]
    assert client.get(url, query_string={"kind": "nope"}, headers=admin).status_code == 422
    assert client.get("/api/admin/reconciliation-runs/rcn_nope/discrepancies", headers=admin).status_code == 404
