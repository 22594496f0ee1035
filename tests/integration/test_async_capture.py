"""Against today's Stripe: capture is asynchronous, 3-D Secure is the shopper's, off-session
failures leave an order payable, refunds can wait. Through the emulator over HTTP."""
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from marketplace.errors import ServiceUnavailable
from marketplace.extensions import db
from marketplace.ledger.models import JournalEntry
from marketplace.payments import service
from marketplace.payments.models import Payment, Refund
from tests.payments_helpers import assert_balances_match, deliver_events, emu, onboarded_vendor, order_for, pay, settle
from tests.reconciliation_helpers import emulator_now, reconcile
from tests.webhook_helpers import deliver

pytestmark = pytest.mark.needs("emulator")


def _entries() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(JournalEntry))


def _events(emulator, *types):
    """The emulator's events of these types, in the order they happened."""
    state = emulator.emulator
    with state.lock:
        events = sorted((e for (kind, _), items in state.store.lists.items() if kind == "event"
                         for e in items if e["type"] in types), key=lambda e: e["_seq"])
        return [{k: v for k, v in e.items() if not k.startswith("_")} for e in events]


def _transfer_ids(client, shopper, order_id):
    return [s["stripe_transfer_id"] for s in client.get(f"/api/orders/{order_id}", headers=shopper).get_json()["splits"]]


@pytest.mark.parametrize("vendors", [1, 3])
def test_the_charge_is_booked_once_when_it_settles(client, shopper, emulator, vendors):
    sellers = [onboarded_vendor(emulator) for _ in range(vendors)]
    order = order_for(client, shopper, sellers, [1500, 2500, 999][:vendors])
    answer = pay(client, shopper, order["id"])  # no event delivered yet
    assert answer.status_code == 200 and answer.get_json()["order_status"] == "paid"
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order["id"]))
    assert payment.status == "succeeded" and payment.stripe_balance_transaction_id is None
    emu(emulator, "POST", "/_emulator/settle")
    # Only charge.updated says the charge settled (payment_intent.succeeded came before,
    # and confirmation already handled it): delivered twice, as Stripe may.
    for event in _events(emulator, "charge.updated") * 2:
        assert deliver(client, event).status_code == 200
    db.session.rollback()
    assert db.session.get(Payment, payment.id).stripe_balance_transaction_id.startswith("txn_")
    assert all(t and t.startswith("tr_") for t in _transfer_ids(client, shopper, order["id"]))
    booked = _entries()
    deliver_events(client, emulator)  # everything, in order: payment_intent.succeeded again
    assert _entries() == booked
    db.session.rollback()
    payment = db.session.get(Payment, payment.id)
    assert payment.stripe_balance_transaction_id.startswith("txn_") and payment.stripe_fee > 0
    assert all(t and t.startswith("tr_") for t in _transfer_ids(client, shopper, order["id"]))
    assert_balances_match(emulator, order["id"])
    # booked: the worker's sweep never looks at it again, however old it is
    payment.succeeded_at -= timedelta(hours=1)
    db.session.commit()
    assert service.book_unsettled() == 0 and _entries() == booked


def test_a_lost_charge_updated_is_made_up_by_the_sweep(client, shopper, emulator):
    emu(emulator, "POST", "/_emulator/capture", delay_seconds=3600)  # settled below, not while paying
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [4200])
    assert pay(client, shopper, order["id"]).status_code == 200
    emu(emulator, "POST", "/_emulator/settle")  # settled at Stripe, but its event never arrives
    assert service.book_unsettled() == 0  # too early: the event is still expected
    assert _transfer_ids(client, shopper, order["id"]) == [None]
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order["id"]))
    payment.succeeded_at -= timedelta(minutes=3)
    db.session.commit()
    assert service.book_unsettled() == 1
    assert _transfer_ids(client, shopper, order["id"])[0].startswith("tr_")
    assert_balances_match(emulator, order["id"])
    assert service.book_unsettled() == 0  # booked: never looked at again


def test_the_sweep_is_scheduled():
    from marketplace.worker import SCHEDULE

    jobs = {s.name: s.job for s in SCHEDULE}
    assert jobs["book-unsettled-payments"] == "jobs.maintenance.book_unsettled_payments"


def test_separate_transfers_are_made_before_the_charge_settles(client, shopper, emulator):
    sellers = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, sellers, [3000, 1000])
    assert pay(client, shopper, order["id"]).status_code == 200  # the transfer job ran inline
    assert all(t.startswith("tr_") for t in _transfer_ids(client, shopper, order["id"]))
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order["id"]))
    assert payment.stripe_balance_transaction_id is None  # the charge itself has not settled
    settle(client, emulator)
    assert_balances_match(emulator, order["id"])


def test_three_d_secure_is_completed_by_the_shopper_only(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1800])
    first = pay(client, shopper, order["id"], "pm_card_authenticationRequired").get_json()
    assert first["status"] == "requires_action"
    for _ in range(2):  # confirming again never gets round the authentication
        again = client.post(f"/api/orders/{order['id']}/confirm",
                            json={"payment_method": "pm_card_authenticationRequired"}, headers=shopper)
        assert again.get_json()["status"] == "requires_action"
    settle(client, emulator)
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "pending_payment"
    emu(emulator, "POST", f"/_emulator/payment_intents/{first['payment_intent_id']}/authenticate")
    settle(client, emulator)
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "paid"
    assert_balances_match(emulator, order["id"])


def test_an_off_session_payment_needing_authentication_leaves_the_order_payable(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2100])
    intent = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper).get_json()
    failed = emu_raw(emulator, f"/v1/payment_intents/{intent['payment_intent_id']}/confirm",
                     payment_method="pm_card_authenticationRequired", off_session="true")
    assert failed.status_code == 402 and failed.json()["error"]["code"] == "authentication_required"
    settle(client, emulator)  # payment_intent.payment_failed reaches the app
    after = client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()
    assert after["status"] == "payment_failed" and after["payment"]["status"] == "requires_payment_method"
    assert db.session.scalar(select(Payment.decline_code)) == "authentication_required"
    paid = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=shopper)
    assert paid.status_code == 200 and paid.get_json()["order_status"] == "paid"
    settle(client, emulator)
    assert_balances_match(emulator, order["id"])


def emu_raw(emulator, path, **form):
    import requests

    return requests.post(f"{emulator.url}{path}", data=form, timeout=10,
                         headers={"Authorization": "Bearer sk_test_emulator"})


def _refund(client, admin, order_id, **body):
    return client.post(f"/api/orders/{order_id}/refunds", json={"reason": "requested_by_customer", **body},
                       headers=admin)


@pytest.mark.parametrize("vendors", [1, 2])
def test_a_pending_refund_is_shown_pending_and_booked_when_it_succeeds(client, shopper, admin, emulator, vendors):
    sellers = [onboarded_vendor(emulator) for _ in range(vendors)]
    order = order_for(client, shopper, sellers, [2000, 1000][:vendors])
    assert pay(client, shopper, order["id"], "pm_card_pendingRefund", emulator=emulator).status_code == 200
    booked = _entries()
    answer = _refund(client, admin, order["id"], amount=600)
    assert answer.status_code == 201 and answer.get_json()["status"] == "pending"
    refund_id = answer.get_json()["id"]
    assert _entries_of("refund") == []  # nothing moved for the shopper yet: nothing booked for it
    assert _entries() > booked  # what did move is: the vendors' shares taken back
    settle(client, emulator)  # Stripe puts the refund through; refund.updated reaches the app
    db.session.rollback()
    assert db.session.get(Refund, refund_id).status == "succeeded"
    assert len(_entries_of("refund")) == 1
    assert_balances_match(emulator, order["id"])
    _reconciled(client, admin, emulator)


def test_a_refund_the_platform_cannot_cover_waits_and_is_booked_after(client, shopper, admin, emulator):
    emu(emulator, "POST", "/v1/balance_settings", **{"payments[debit_negative_balances]": "false"})
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    answer = _refund(client, admin, order["id"])
    assert answer.status_code == 201 and answer.get_json()["status"] == "pending"
    assert _entries_of("refund") == []
    top_up = order_for(client, shopper, [onboarded_vendor(emulator)], [5000])
    assert pay(client, shopper, top_up["id"], emulator=emulator).status_code == 200  # money comes in
    db.session.rollback()
    assert db.session.get(Refund, answer.get_json()["id"]).status == "succeeded"
    assert len(_entries_of("refund")) == 1
    assert_balances_match(emulator, order["id"])
    _reconciled(client, admin, emulator)


def _entries_of(kind):
    db.session.rollback()
    return list(db.session.scalars(select(JournalEntry).where(JournalEntry.kind == kind)))


def _reconciled(client, admin, emulator):
    now = emulator_now(emulator)
    run = reconcile(client, admin, now - 3600, now + 3600)
    assert run["status"] == "completed" and run["counts"]["matched"] > 0
    assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
        "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}, run["discrepancies"]


def test_a_charge_converted_by_stripe_is_booked_as_stripe_booked_it_and_flagged(client, shopper, emulator, caplog):
    from tests.factories import ProductFactory

    vendor = onboarded_vendor(emulator)
    product = ProductFactory(vendor=None, vendor_id=vendor.id, price=2000, currency="eur", stock=5)
    order = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]},
                        headers=shopper).get_json()
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200  # a usd-only platform
    entry = db.session.scalar(select(JournalEntry).where(JournalEntry.kind == "charge"))
    assert entry is not None and {p.currency for p in entry.postings} == {"usd"}
    assert "was converted to usd" in caplog.text


def test_the_sweep_goes_on_past_a_payment_stripe_cannot_answer_for(client, shopper, emulator):
    emu(emulator, "POST", "/_emulator/capture", delay_seconds=3600)  # settled below, not while paying
    orders = [order_for(client, shopper, [onboarded_vendor(emulator)], [1000 + i]) for i in range(2)]
    for order in orders:
        assert pay(client, shopper, order["id"]).status_code == 200
    emu(emulator, "POST", "/_emulator/settle")
    for payment in db.session.scalars(select(Payment)):
        payment.succeeded_at -= timedelta(minutes=3)
    db.session.commit()
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/payment_intents/", mode="error", count=1,
        method="GET")
    with pytest.raises(ServiceUnavailable):  # the injected 500: Stripe unavailable
        service.book_unsettled()
    booked = [_transfer_ids(client, shopper, o["id"])[0] for o in orders]
    assert sum(1 for t in booked if t) == 1  # the other one was still booked
    assert service.book_unsettled() == 1  # and the one Stripe failed for, on the next sweep
    assert all(_transfer_ids(client, shopper, o["id"])[0] for o in orders)


def _calls(emulator) -> dict[str, int]:
    return {f"{row['method']} {row['path']}": row["count"] for row in emu(emulator, "GET", "/_emulator/requests")["data"]}


@pytest.mark.parametrize("vendors", [1, 3])
def test_a_checkout_and_every_event_it_causes_make_the_fewest_stripe_calls(client, shopper, emulator, vendors):
    """The PaymentIntent, its confirmation (whose answer is booked as it is) and one read once
    the charge settles: every event after that (payment_intent.succeeded, the charge.updated
    that announces the money, transfer.created, each delivered twice) asks Stripe nothing
    more. Separate charges add one transfer per vendor, whose answer shows the vendor's side."""
    sellers = [onboarded_vendor(emulator) for _ in range(vendors)]
    order = order_for(client, shopper, sellers, [1500, 2500, 999][:vendors])
    requests.delete(f"{emulator.url}/_emulator/requests", timeout=10).raise_for_status()
    assert pay(client, shopper, order["id"]).get_json()["order_status"] == "paid"
    emu(emulator, "POST", "/_emulator/settle")
    events = _events(emulator, "payment_intent.succeeded", "charge.succeeded", "charge.updated", "transfer.created")
    for event in events + events[::-1]:  # each twice, the second time newest first
        assert deliver(client, event).status_code == 200
    expected = {"POST /v1/payment_intents": 1, "POST /v1/payment_intents/<pid>/confirm": 1,
                "GET /v1/payment_intents/<pid>": 1}
    if vendors > 1:
        expected["POST /v1/transfers"] = vendors
    assert _calls(emulator) == expected
    assert all(t and t.startswith("tr_") for t in _transfer_ids(client, shopper, order["id"]))
    db.session.rollback()
    assert db.session.scalar(select(Payment.stripe_balance_transaction_id)
                             .where(Payment.order_id == order["id"])).startswith("txn_")
    assert_balances_match(emulator, order["id"])
