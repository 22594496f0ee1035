"""Refunds through the emulator: whole, partial with odd amounts, by items; balances agree after each."""
import threading

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.payments import adoption, refunds
from marketplace.payments.models import Refund
from tests.payments_helpers import assert_balances_match, emu, onboarded_vendor, order_for, paid_order, stripe_balance

pytestmark = pytest.mark.needs("emulator")


def refund(client, admin, order_id, **body):
    return client.post(f"/api/orders/{order_id}/refunds", json={"reason": "requested_by_customer", **body}, headers=admin)


def test_full_refund_of_a_destination_charge(client, shopper, admin, emulator):
    order, _ = paid_order(client, shopper, emulator, [1000], vendors=1)
    response = refund(client, admin, order["id"])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["amount"], body["status"], body["currency"]) == (1000, "succeeded", "usd")
    assert body["stripe_refund_id"].startswith("re_")
    [allocation] = body["allocations"]
    assert allocation["amount"] == 1000 and allocation["platform_fee_refunded"] == 100
    assert allocation["stripe_transfer_reversal_id"].startswith("trr_")
    after = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert after["status"] == "refunded" and after["splits"][0]["refunded"] == 1000
    assert stripe_balance(emulator) == -59  # the processing fee is never returned
    assert_balances_match(emulator, order["id"])
    again = refund(client, admin, order["id"])
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "order_not_paid"


def test_partial_refunds_of_a_destination_charge_follow_stripe_fee_rounding(client, shopper, admin, emulator):
    order, _ = paid_order(client, shopper, emulator, [1234], vendors=1)
    first = refund(client, admin, order["id"], amount=333).get_json()
    assert first["allocations"][0]["platform_fee_refunded"] == 33  # 333 * 123 / 1234 = 33.19
    assert_balances_match(emulator, order["id"])
    rest = refund(client, admin, order["id"]).get_json()
    assert rest["amount"] == 901
    assert first["allocations"][0]["platform_fee_refunded"] + rest["allocations"][0]["platform_fee_refunded"] == 123
    assert_balances_match(emulator, order["id"])
    # The platform's fee comes back to the vendor as on separate charges: the reversals take
    # the vendor's net loss (1234 - 123) and the fee revenue is given back in the ledger.
    fee = emu(emulator, "GET", "/v1/application_fees")["data"][0]
    assert fee["amount_refunded"] == 0
    transfer = emu(emulator, "GET", "/v1/transfers")["data"][0]
    assert transfer["amount_reversed"] == 1234 - 123
    assert ledger.balance("platform:fee_revenue", "usd") == 0


def test_partial_refunds_with_odd_amounts_across_three_vendors(client, shopper, admin, emulator):
    order, _ = paid_order(client, shopper, emulator, [1001, 2003, 997])
    for amount in (1, 333, 1237):
        response = refund(client, admin, order["id"], amount=amount)
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert sum(a["amount"] for a in body["allocations"]) == amount
        assert all(a["stripe_transfer_reversal_id"] or a["amount"] == a["platform_fee_refunded"]
                   for a in body["allocations"])
        assert_balances_match(emulator, order["id"])
    after = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert after["status"] == "partially_refunded"
    assert sum(s["refunded"] for s in after["splits"]) == 1 + 333 + 1237
    too_much = refund(client, admin, order["id"], amount=4001 - 1571 + 1)
    assert too_much.status_code == 422 and too_much.get_json()["error"]["code"] == "refund_exceeds_refundable"
    rest = refund(client, admin, order["id"])
    assert rest.status_code == 201 and rest.get_json()["amount"] == 4001 - 1571
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "refunded"
    assert_balances_match(emulator, order["id"])
    for split in client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["splits"]:
        vendor_account = emu(emulator, "GET", f"/v1/transfers/{split['stripe_transfer_id']}")["destination"]
        assert stripe_balance(emulator, vendor_account) == 0


def test_refund_by_items(client, shopper, admin, emulator):
    order, _ = paid_order(client, shopper, emulator, [1500, 2500, 999], quantities=[2, 1, 3])
    item = order["items"][2]
    response = refund(client, admin, order["id"], items=[{"order_item_id": item["id"], "quantity": 2}])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["amount"] == 1998 and [a["vendor_id"] for a in body["allocations"]] == [item["vendor_id"]]
    assert_balances_match(emulator, order["id"])
    over = refund(client, admin, order["id"], items=[{"order_item_id": item["id"], "quantity": 2}])
    assert over.status_code == 422 and over.get_json()["error"]["code"] == "refund_exceeds_refundable"
    foreign = refund(client, admin, order["id"], items=[{"order_item_id": "oit_nope", "quantity": 1}])
    assert foreign.status_code == 422
    both = refund(client, admin, order["id"], items=[{"order_item_id": item["id"], "quantity": 1}], amount=5)
    assert both.status_code == 422


def test_refund_needs_a_paid_order_and_an_admin(client, shopper, admin, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    unpaid = refund(client, admin, order["id"])
    assert unpaid.status_code == 409 and unpaid.get_json()["error"]["code"] == "order_not_paid"
    assert refund(client, shopper, order["id"]).status_code == 403
    assert refund(client, admin, "ord_missing").status_code == 404
    assert refund(client, admin, order["id"], reason="whim").status_code == 422


def test_charge_refunded_webhook_is_idempotent(client, shopper, admin, emulator):
    order, _ = paid_order(client, shopper, emulator, [1000, 2000], vendors=2)
    assert refund(client, admin, order["id"], amount=500).status_code == 201
    charge_id = _charge(client, shopper, order)
    entries = _entries()
    assert adoption.handle_charge_refunded({"id": charge_id}) == 1
    assert refunds.handle_refund_updated({"id": db.session.scalar(select(Refund.stripe_refund_id))}) == "succeeded"
    assert _entries() == entries
    assert_balances_match(emulator, order["id"])


def _entries():
    from marketplace.ledger.models import JournalEntry

    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(JournalEntry))


def test_a_failed_refund_gives_its_reservation_back(client, shopper, admin, emulator, monkeypatch):
    from marketplace import stripe_gateway

    order, _ = paid_order(client, shopper, emulator, [1000], vendors=1)
    made = refund(client, admin, order["id"], amount=400).get_json()
    real = stripe_gateway.retrieve_refund

    def failed(refund_id, account=None, expand=None):
        current = real(refund_id, account=account, expand=expand)
        return {**current, "status": "failed", "failure_reason": "expired_or_canceled_card",
                "failure_balance_transaction": None}

    monkeypatch.setattr(stripe_gateway, "retrieve_refund", failed)
    assert refunds.handle_refund_updated({"id": made["stripe_refund_id"]}) == "failed"
    assert refunds.handle_refund_failed({"id": made["stripe_refund_id"]}) == "failed"
    after = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert after["status"] == "paid" and after["splits"][0]["refunded"] == 0


def test_concurrent_refunds_never_exceed_the_total(client, shopper, admin, emulator, stripe_app, pg_only):
    order, _ = paid_order(client, shopper, emulator, [1000, 1000], vendors=2)
    codes, barrier = [], threading.Barrier(6)

    def call():
        with stripe_app.app_context():
            barrier.wait(5)
            codes.append(refund(stripe_app.test_client(), admin, order["id"], amount=700).status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(codes) == [201, 201] + [422] * 4
    charge = emu(emulator, "GET", f"/v1/charges/{_charge(client, shopper, order)}")
    assert charge["amount_refunded"] == 1400
    assert_balances_match(emulator, order["id"])


def _charge(client, shopper, order):
    return client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["payment"]["stripe_charge_id"]
