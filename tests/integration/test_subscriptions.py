"""Vendor subscriptions through the emulator: Stripe bills them, every paid invoice is an order
booked as a destination charge, paid out and reconciled; renewals by advancing the clock."""
import random
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.ledger.models import JournalEntry
from marketplace.movements.models import Movement
from marketplace.orders.models import Order
from marketplace.payments.models import Payment
from marketplace.subscriptions.models import Subscription
from tests.integration.test_money_faults import _ledger_equals_stripe, _sweep_until_done
from tests.integration.test_wallets import _save
from tests.payments_helpers import assert_balances_match, emu, onboarded_vendor, settle, stripe_balance
from tests.reconciliation_helpers import emulator_now, reconcile
from tests.webhook_helpers import deliver

pytestmark = pytest.mark.needs("emulator")
MONTH = 31 * 86400 + 2 * 3600  # past the period end and the renewal draft's hour


def _vendor_headers(auth, vendor):
    """A token of the vendor's user (made by onboarded_vendor with the factories' password)."""
    from marketplace.auth import service
    from marketplace.auth.models import User

    user = db.session.get(User, vendor.user_id)
    return {"Authorization": f"Bearer {service.issue_token(user.email, 'correct horse battery').token}"}


def _recurring_product(client, auth, emulator, price=1500, interval="month", count=1, **fee):
    vendor = onboarded_vendor(emulator, **fee)
    response = client.post("/api/products", json={
        "name": "Tea of the month", "price": price, "currency": "usd", "stock": 0,
        "recurring": {"interval": interval, "interval_count": count}}, headers=_vendor_headers(auth, vendor))
    assert response.status_code == 201, response.get_json()
    return vendor, response.get_json()


def _subscribe(client, shopper, product_id, status=201, **body):
    response = client.post("/api/subscriptions", json={"product_id": product_id, **body}, headers=shopper)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _renew(client, emulator, seconds=MONTH):
    emu(emulator, "POST", "/_emulator/clock/advance", seconds=seconds)
    settle(client, emulator)


def _renewals_paid_with(emulator, stripe_subscription_id, test_card):
    """The subscription's renewals charged to a test card from now on (attached first)."""
    customer = emu(emulator, "GET", f"/v1/subscriptions/{stripe_subscription_id}")["customer"]
    card = emu(emulator, "POST", f"/v1/payment_methods/{test_card}/attach", customer=customer)
    emu(emulator, "POST", f"/v1/subscriptions/{stripe_subscription_id}", default_payment_method=card["id"])


def _invoice_orders(subscription_id):
    db.session.rollback()
    return db.session.scalars(select(Order).where(Order.subscription_id == subscription_id)
                              .order_by(Order.created_at)).all()


def test_a_recurring_product_has_a_stripe_price_and_a_new_one_when_its_price_changes(client, auth, emulator):
    vendor, product = _recurring_product(client, auth, emulator, price=1500)
    assert product["recurring"] == {"interval": "month", "interval_count": 1}
    db.session.rollback()
    from marketplace.catalog.models import Product

    first = db.session.get(Product, product["id"]).stripe_price_id
    price = emu(emulator, "GET", f"/v1/prices/{first}")
    assert (price["unit_amount"], price["recurring"]["interval"]) == (1500, "month")
    changed = client.patch(f"/api/products/{product['id']}", json={"price": 1800},
                           headers=_vendor_headers(auth, vendor))
    assert changed.status_code == 200, changed.get_json()
    db.session.rollback()
    second = db.session.get(Product, product["id"]).stripe_price_id
    assert second != first and emu(emulator, "GET", f"/v1/prices/{second}")["unit_amount"] == 1800


def test_three_periods_paid_each_an_order_to_the_cent(client, auth, shopper, admin, emulator):
    vendor, product = _recurring_product(client, auth, emulator, price=2000)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    assert subscription["status"] == "active" and subscription["fee_policy"]["percent_bps"] == 1000
    assert subscription["latest_invoice"]["status"] == "paid"
    settle(client, emulator)
    for _ in range(2):
        _renew(client, emulator)
    orders = _invoice_orders(subscription["id"])
    assert [o.total for o in orders] == [2000, 2000, 2000] and all(o.status == "paid" for o in orders)
    for order in orders:
        assert order.splits[0].platform_fee == 200 and order.splits[0].vendor_net == 1800
    assert stripe_balance(emulator, vendor.stripe_account_id) == 3 * 1800
    for order in orders:
        assert_balances_match_platform_only(emulator)
    assert db.session.scalar(select(func.count()).select_from(JournalEntry).where(JournalEntry.kind == "charge")) == 3
    fetched = client.get(f"/api/subscriptions/{subscription['id']}", headers=shopper).get_json()
    assert fetched["latest_invoice"]["order_id"] == orders[-1].id
    order = client.get(f"/api/orders/{orders[-1].id}", headers=shopper).get_json()
    assert (order["subscription_id"], order["stripe_invoice_id"]) == (subscription["id"], fetched["latest_invoice"]["id"])
    assert order["status"] == "paid" and order["payment"]["payment_intent_id"].startswith("pi_")
    vendor_headers = _vendor_headers(auth, vendor)
    sales = client.get("/api/vendors/me/sales", headers=vendor_headers)
    assert sales.status_code == 200, sales.get_json()
    revenue = client.get("/api/admin/reports/revenue", headers=admin).get_json()["data"]
    assert [(r["currency"], r["gross_volume"], r["platform_fees"]) for r in revenue] == [("usd", 6000, 600)]
    months = [m["month"] for m in client.get("/api/vendors/me/statements", headers=vendor_headers).get_json()["data"]]
    in_statements = set()
    for month in months:
        statement = client.get(f"/api/vendors/me/statements/{month}", headers=vendor_headers).get_json()
        in_statements |= {line.get("order_id") for line in statement["lines"]}
        for row in statement["balances"]:
            assert row["opening"] + row["sales"] - row["platform_fees"] - row["refunds"] - row["disputes"] \
                - row["payouts"] == row["closing"]
    assert {o.id for o in orders} <= in_statements
    now = emulator_now(emulator)
    matched = 0
    for start in range(now - 4 * MONTH, now + 3600, 30 * 86400):  # windows of at most 31 days
        run = reconcile(client, admin, start, min(start + 30 * 86400, now + 3600))
        matched += run["counts"]["matched"]
        assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
            "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}, run["discrepancies"]
    assert matched >= 3 * 3  # each invoice's charge, application fee and the vendor's payment


def assert_balances_match_platform_only(emulator):
    from marketplace.ledger import service as ledger

    db.session.rollback()
    assert stripe_balance(emulator) == ledger.balance("platform:stripe_balance", "usd")


def test_the_invoice_events_duplicated_and_shuffled_book_each_invoice_once(client, auth, shopper, emulator):
    _, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    emu(emulator, "POST", "/_emulator/clock/advance", seconds=MONTH)
    emu(emulator, "POST", "/_emulator/settle")
    from tests.integration.test_checkout import _events

    events = _events(emulator)
    assert {"invoice.paid", "customer.subscription.updated"} <= {e["type"] for e in events}
    shuffled = events + events
    random.Random(11).shuffle(shuffled)
    for event in shuffled:
        assert deliver(client, event).status_code == 200
    settle(client, emulator)
    orders = _invoice_orders(subscription["id"])
    assert len(orders) == 2 and len({o.stripe_invoice_id for o in orders}) == 2
    assert all(o.status == "paid" for o in orders)
    assert_balances_match_platform_only(emulator)


def test_a_failed_renewal_makes_it_past_due_then_a_working_card_recovers_it(client, auth, shopper, emulator):
    vendor, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    settle(client, emulator)
    db.session.rollback()
    local = db.session.get(Subscription, subscription["id"])
    _renewals_paid_with(emulator, local.stripe_subscription_id, "pm_card_chargeCustomerFail")
    _renew(client, emulator)
    assert client.get(f"/api/subscriptions/{local.id}", headers=shopper).get_json()["status"] == "past_due"
    assert len(_invoice_orders(subscription["id"])) == 1
    _renewals_paid_with(emulator, local.stripe_subscription_id, "pm_card_visa")
    _renew(client, emulator, seconds=8 * 86400)  # Stripe's next retry
    assert client.get(f"/api/subscriptions/{local.id}", headers=shopper).get_json()["status"] == "active"
    orders = _invoice_orders(subscription["id"])
    assert len(orders) == 2 and stripe_balance(emulator, vendor.stripe_account_id) == 2 * (1500 - 150)


def test_a_first_payment_needing_authentication_answers_next_action(client, auth, shopper, emulator):
    _, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_authenticationRequired")
    assert subscription["status"] == "incomplete" and subscription["next_action"]
    assert _invoice_orders(subscription["id"]) == []
    invoice = emu(emulator, "GET", f"/v1/invoices/{subscription['latest_invoice']['id']}", **{"expand[]": "payments"})
    intent = invoice["payments"]["data"][0]["payment"]["payment_intent"]
    emu(emulator, "POST", f"/_emulator/payment_intents/{intent}/authenticate", outcome="succeed")  # the shopper
    settle(client, emulator)
    assert client.get(f"/api/subscriptions/{subscription['id']}", headers=shopper).get_json()["status"] == "active"
    assert [o.status for o in _invoice_orders(subscription["id"])] == ["paid"]
    assert_balances_match_platform_only(emulator)


def test_cancel_at_period_end_then_it_ends_and_cancel_now(client, auth, shopper, admin, emulator):
    _, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    scheduled = client.post(f"/api/subscriptions/{subscription['id']}/cancel", json={"at_period_end": True},
                            headers=shopper)
    assert scheduled.status_code == 200 and scheduled.get_json()["cancel_at_period_end"] is True
    assert scheduled.get_json()["status"] == "active"
    _renew(client, emulator)
    ended = client.get(f"/api/subscriptions/{subscription['id']}", headers=shopper).get_json()
    assert ended["status"] == "canceled" and len(_invoice_orders(subscription["id"])) == 1
    again = client.post(f"/api/subscriptions/{subscription['id']}/cancel", json={"at_period_end": False},
                        headers=shopper)
    assert again.status_code == 409
    _, other_product = _recurring_product(client, auth, emulator)
    card = client.get("/api/payment-methods", headers=shopper).get_json()["data"][0]  # saved by the first
    assert client.put(f"/api/payment-methods/{card['id']}/default", headers=shopper).status_code == 200
    other = _subscribe(client, shopper, other_product["id"])  # with the default card
    now = client.post(f"/api/subscriptions/{other['id']}/cancel", json={"at_period_end": False}, headers=admin)
    assert now.status_code == 200 and now.get_json()["status"] == "canceled"


def test_a_refunded_invoice_takes_the_vendors_share_back(client, auth, shopper, admin, emulator):
    vendor, product = _recurring_product(client, auth, emulator, price=3000)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    settle(client, emulator)
    order_id = client.get(f"/api/subscriptions/{subscription['id']}", headers=admin).get_json()[
        "latest_invoice"]["order_id"]
    refund = client.post(f"/api/orders/{order_id}/refunds", json={"reason": "requested_by_customer", "amount": 1000},
                         headers=admin)
    assert refund.status_code == 201, refund.get_json()
    settle(client, emulator)
    assert_balances_match(emulator, order_id)


def test_vendors_see_subscribers_and_monthly_recurring_revenue_shoppers_their_own(client, auth, shopper, emulator):
    vendor, monthly = _recurring_product(client, auth, emulator, price=1500)
    response = client.post("/api/products", json={
        "name": "Yearly box", "price": 12000, "currency": "usd", "stock": 0,
        "recurring": {"interval": "year", "interval_count": 1}}, headers=_vendor_headers(auth, vendor))
    yearly = response.get_json()
    first = _subscribe(client, shopper, monthly["id"], payment_method="pm_card_visa")
    saved = client.get("/api/payment-methods", headers=shopper).get_json()["data"][0]
    _subscribe(client, shopper, yearly["id"], payment_method=saved["id"])  # the card the first saved
    assert first["status"] == "active"
    listed = client.get("/api/vendors/me/subscriptions", headers=_vendor_headers(auth, vendor)).get_json()
    assert listed["summary"] == {"active": 2, "mrr": [{"currency": "usd", "amount": 1500 + 1000}]}
    mine = client.get("/api/subscriptions", headers=shopper).get_json()["data"]
    assert len(mine) == 2
    _, stranger = auth.user("shopper")
    assert client.get("/api/subscriptions", headers=stranger).get_json()["data"] == []
    assert client.get(f"/api/subscriptions/{mine[0]['id']}", headers=stranger).status_code == 404
    twice = client.post("/api/subscriptions", json={"product_id": monthly["id"]}, headers=shopper)
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "already_subscribed"


def test_concurrent_subscribes_to_one_product_make_one_subscription(app, client, auth, shopper, emulator, pg_only):
    import threading

    _, product = _recurring_product(client, auth, emulator)
    card = _save(client, shopper)
    answers, barrier = [], threading.Barrier(4)

    def attempt():
        with app.test_client() as own:
            barrier.wait()
            answer = own.post("/api/subscriptions", json={"product_id": product["id"], "payment_method": card["id"]},
                              headers=shopper)
            answers.append((answer.status_code, (answer.get_json() or {}).get("id")))
            db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each is refused as subscribed already, or is the one subscription (a request that found
    # it still being made sent the same request under the same key).
    assert {status for status, _ in answers} <= {201, 409} and 201 in {status for status, _ in answers}, answers
    assert len({made for status, made in answers if status == 201}) == 1
    assert len(emu(emulator, "GET", "/v1/subscriptions", limit=100)["data"]) == 1
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 1


def _fixed_fee_subscription(client, auth, shopper, emulator):
    vendor, product = _recurring_product(client, auth, emulator, price=2000, fee_percent_bps=1000, fee_fixed=50)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    assert subscription["fee_policy"] == {"percent_bps": 1000, "fixed": 50}
    return vendor, subscription


def _fee_collections():
    db.session.rollback()
    return db.session.scalars(select(Movement).where(Movement.kind == "fee_collection")).all()


def _statement_figures(client, headers) -> dict:
    """The vendor's statements summed over every month."""
    totals: dict[str, int] = {}
    for month in client.get("/api/vendors/me/statements", headers=headers).get_json()["data"]:
        statement = client.get(f"/api/vendors/me/statements/{month['month']}", headers=headers).get_json()
        for row in statement["balances"]:
            assert row["opening"] + row["sales"] - row["platform_fees"] - row["refunds"] - row["disputes"] \
                - row["payouts"] == row["closing"]
            for name in ("sales", "platform_fees", "refunds"):
                totals[name] = totals.get(name, 0) + row[name]
        totals["fee_lines"] = totals.get("fee_lines", 0) + sum(
            line["amount"] for line in statement["lines"] if line["kind"] == "platform_fee")
    return totals


def test_a_fixed_fee_is_taken_on_every_invoice_the_first_by_a_fee_collection(client, auth, shopper, admin,
                                                                             emulator):
    """The first invoice is finalized at once with the percent alone as its application fee:
    the fixed part is taken back from Stripe's transfer (one reversal, booked as fee revenue);
    each renewal's draft gets the whole fee as its application fee."""
    vendor, subscription = _fixed_fee_subscription(client, auth, shopper, emulator)
    settle(client, emulator)
    _renew(client, emulator, seconds=31 * 86400 + 60)  # the renewal's draft, told by invoice.created
    _renew(client, emulator, seconds=2 * 3600)  # finalized and paid
    first, renewal = _invoice_orders(subscription["id"])
    assert (first.splits[0].platform_fee, renewal.splits[0].platform_fee) == (250, 250)
    assert [db.session.scalar(select(Payment.application_fee_amount).where(Payment.order_id == o.id))
            for o in (first, renewal)] == [200, 250]  # what Stripe's application fee took
    [collection] = _fee_collections()
    assert (collection.status, collection.amount, collection.order_id) == ("succeeded", 50, first.id)
    transfer = emu(emulator, "GET", f"/v1/transfers/{first.splits[0].stripe_transfer_id}")
    assert [(r["amount"], r["metadata"]["movement_id"]) for r in transfer["reversals"]["data"]] == [
        (50, collection.id)]
    assert stripe_balance(emulator, vendor.stripe_account_id) == 1750 + 1750
    _ledger_equals_stripe(emulator, [vendor])
    revenue = client.get("/api/admin/reports/revenue", headers=admin).get_json()["data"]
    assert [(r["gross_volume"], r["platform_fees"]) for r in revenue] == [(4000, 500)]
    figures = _statement_figures(client, _vendor_headers(auth, vendor))
    assert (figures["sales"], figures["platform_fees"], figures["refunds"]) == (4000, 500, 0)
    assert figures["fee_lines"] == -500  # the two fees, the first one's fixed part a line of its own
    now = emulator_now(emulator)
    for start in range(now - 2 * MONTH, now + 3600, 30 * 86400):
        run = reconcile(client, admin, start, min(start + 30 * 86400, now + 3600))
        assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
            "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}, run["discrepancies"]


def test_a_fee_collection_whose_answer_is_lost_is_found_not_made_twice(client, auth, shopper, admin, emulator):
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers/", mode="lost", count=1, method="POST")
    vendor, subscription = _fixed_fee_subscription(client, auth, shopper, emulator)
    settle(client, emulator)
    [collection] = _fee_collections()
    if collection.status != "succeeded":  # its answer was lost: looked for at Stripe, then recorded
        _sweep_until_done()
        [collection] = _fee_collections()
    assert collection.status == "succeeded" and collection.attempts >= 2
    [first] = _invoice_orders(subscription["id"])
    transfer = emu(emulator, "GET", f"/v1/transfers/{first.splits[0].stripe_transfer_id}")
    assert [r["amount"] for r in transfer["reversals"]["data"]] == [50]
    assert stripe_balance(emulator, vendor.stripe_account_id) == 1750
    assert_balances_match(emulator, first.id)


def test_a_refunded_first_invoice_takes_back_what_the_vendor_kept_after_its_fee(client, auth, shopper, admin,
                                                                              emulator):
    vendor, subscription = _fixed_fee_subscription(client, auth, shopper, emulator)
    settle(client, emulator)
    [first] = _invoice_orders(subscription["id"])
    refund = client.post(f"/api/orders/{first.id}/refunds", json={"reason": "requested_by_customer"}, headers=admin)
    assert refund.status_code == 201, refund.get_json()
    settle(client, emulator)
    assert stripe_balance(emulator, vendor.stripe_account_id) == 0
    assert_balances_match(emulator, first.id)
    figures = _statement_figures(client, _vendor_headers(auth, vendor))
    assert (figures["sales"], figures["platform_fees"], figures["refunds"]) == (2000, 250, 1750)


def test_invoices_are_paid_out_with_the_vendors_other_sales(client, auth, shopper, admin, emulator, monkeypatch):
    from tests.payouts_helpers import follow_emulator_clock, payouts_of

    follow_emulator_clock(monkeypatch, emulator)
    vendor, product = _recurring_product(client, auth, emulator, price=2500)
    _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    _renew(client, emulator)  # a second invoice, and the first one's funds available
    _renew(client, emulator, seconds=8 * 86400)
    run = client.post("/api/admin/payout-runs", json={"currency": "usd"}, headers=admin)
    assert run.status_code in (201, 202), run.get_json()
    settle(client, emulator)
    payouts = emu(emulator, "GET", "/v1/payouts", account=vendor.stripe_account_id)["data"]
    assert [p["amount"] for p in payouts] == [2 * 2250]
    assert [(p.amount, p.order_count) for p in payouts_of(vendor)] == [(2 * 2250, 2)]


def test_a_declined_first_payment_is_402_and_leaves_the_shopper_free_to_subscribe_again(client, auth, shopper,
                                                                                       emulator):
    _, product = _recurring_product(client, auth, emulator)
    declined = client.post("/api/subscriptions", json={"product_id": product["id"],
                                                       "payment_method": "pm_card_chargeCustomerFail"}, headers=shopper)
    assert declined.status_code == 402, declined.get_json()
    db.session.rollback()
    assert db.session.scalar(select(Subscription.status)) in ("canceled", "incomplete_expired")
    made = emu(emulator, "GET", "/v1/subscriptions", limit=100, status="all")["data"]
    assert [s["status"] for s in made] == ["canceled"]
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    assert subscription["status"] == "active"
    settle(client, emulator)
    assert len(_invoice_orders(subscription["id"])) == 1
    assert_balances_match_platform_only(emulator)


def _subscribe_losing_the_answer(client, shopper, monkeypatch, product_id):
    """Stripe makes the subscription (and charges its first invoice); its answer never comes,
    so the shopper is told 503. Later calls reach Stripe as usual."""
    from marketplace import stripe_gateway
    from marketplace.errors import ServiceUnavailable

    real = stripe_gateway.create_subscription

    def lost(params, key):
        real(params, key)
        raise ServiceUnavailable()

    monkeypatch.setattr(stripe_gateway, "create_subscription", lost)
    assert client.post("/api/subscriptions", json={"product_id": product_id, "payment_method": "pm_card_visa"},
                       headers=shopper).status_code == 503
    monkeypatch.setattr(stripe_gateway, "create_subscription", real)


def test_an_invoice_paid_before_the_subscription_is_known_is_booked_by_its_metadata(client, auth, shopper, emulator,
                                                                                   monkeypatch):
    from tests.integration.test_checkout import _events

    _, product = _recurring_product(client, auth, emulator)
    _subscribe_losing_the_answer(client, shopper, monkeypatch, product["id"])
    emu(emulator, "POST", "/_emulator/settle")
    events = _events(emulator)
    paid = [e for e in events if e["type"] == "invoice.paid"]
    for event in paid + [e for e in events if e["type"] != "invoice.paid"]:  # invoice.paid first
        assert deliver(client, event).status_code == 200
    settle(client, emulator)
    db.session.rollback()
    local = db.session.scalar(select(Subscription))
    assert local.status == "active" and local.stripe_subscription_id is not None
    assert [o.total for o in _invoice_orders(local.id)] == [1500]
    assert_balances_match_platform_only(emulator)


def test_a_paid_first_invoice_the_worker_saw_first_is_booked_though_the_answer_could_not_book_it(
        app, client, auth, shopper, emulator, monkeypatch):
    import threading

    from marketplace import stripe_gateway
    from marketplace.errors import ServiceUnavailable
    from tests.integration.test_checkout import _events

    _, product = _recurring_product(client, auth, emulator)
    real_create, real_intent = stripe_gateway.create_subscription, stripe_gateway.retrieve_payment_intent
    calls = []

    def made_then_the_worker_runs(params, key):
        made = real_create(params, key)
        paid = [e for e in _events(emulator) if e["type"] == "invoice.paid"]

        def worker():
            with app.test_client() as own:
                for event in paid:
                    assert deliver(own, event).status_code == 200
                db.session.remove()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        return made

    def busy_for_the_answer(*args, **kwargs):
        if threading.current_thread() is threading.main_thread() and not calls:  # the answer's own read
            calls.append(1)
            raise ServiceUnavailable()
        return real_intent(*args, **kwargs)

    monkeypatch.setattr(stripe_gateway, "create_subscription", made_then_the_worker_runs)
    monkeypatch.setattr(stripe_gateway, "retrieve_payment_intent", busy_for_the_answer)
    made = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    assert made["status"] == "active"
    monkeypatch.undo()
    settle(client, emulator)
    assert [o.status for o in _invoice_orders(made["id"])] == ["paid"]


def test_a_retry_a_day_after_a_lost_answer_adopts_the_subscription_stripe_made(client, auth, shopper, emulator,
                                                                             monkeypatch):
    _, product = _recurring_product(client, auth, emulator)
    _subscribe_losing_the_answer(client, shopper, monkeypatch, product["id"])
    emu(emulator, "POST", "/_emulator/clock/advance", seconds=25 * 3600)
    db.session.rollback()
    local = db.session.scalar(select(Subscription))
    local.created_at = local.created_at - timedelta(hours=25)  # a day ago, for the app too
    db.session.commit()
    card = client.get("/api/payment-methods", headers=shopper).get_json()["data"][0]
    again = _subscribe(client, shopper, product["id"], payment_method=card["id"])
    assert again["id"] == local.id and again["status"] == "active"
    assert len(emu(emulator, "GET", "/v1/subscriptions", limit=100)["data"]) == 1


def test_a_create_refused_for_its_parameters_ends_the_row(client, auth, shopper, emulator, monkeypatch):
    from marketplace import stripe_gateway
    from marketplace.stripe_gateway import StripeFailure

    _, product = _recurring_product(client, auth, emulator)

    def refused(params, key):
        error = StripeFailure(details={"stripe_code": "parameter_invalid"})
        error.refused_parameters = True
        raise error

    monkeypatch.setattr(stripe_gateway, "create_subscription", refused)
    answer = client.post("/api/subscriptions", json={"product_id": product["id"], "payment_method": "pm_card_visa"},
                         headers=shopper)
    assert answer.status_code == 502
    assert [s["status"] for s in client.get("/api/subscriptions", headers=shopper).get_json()["data"]] == ["canceled"]
    monkeypatch.undo()
    card = client.get("/api/payment-methods", headers=shopper).get_json()["data"][0]
    assert _subscribe(client, shopper, product["id"], payment_method=card["id"])["status"] == "active"


def test_unpaid_at_stripe_is_kept_and_shown_past_due(client, auth, shopper, emulator):
    emu(emulator, "POST", "/_emulator/billing", after_retries="unpaid")
    try:
        _, product = _recurring_product(client, auth, emulator)
        subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
        settle(client, emulator)
        db.session.rollback()
        local = db.session.get(Subscription, subscription["id"])
        _renewals_paid_with(emulator, local.stripe_subscription_id, "pm_card_chargeCustomerFail")
        _renew(client, emulator)
        _renew(client, emulator, seconds=16 * 86400)
        db.session.rollback()
        assert db.session.get(Subscription, local.id).status == "unpaid"
        assert client.get(f"/api/subscriptions/{local.id}", headers=shopper).get_json()["status"] == "past_due"
    finally:
        emu(emulator, "POST", "/_emulator/billing", after_retries="cancel", retry_days=[3, 5, 7])


def test_canceling_one_stripe_ended_already_answers_its_end(client, auth, shopper, emulator):
    import requests

    from tests.payments_helpers import KEY

    _, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    db.session.rollback()
    stripe_id = db.session.get(Subscription, subscription["id"]).stripe_subscription_id
    requests.delete(f"{emulator.url}/v1/subscriptions/{stripe_id}", headers=KEY, timeout=10)  # in the Dashboard
    answer = client.post(f"/api/subscriptions/{subscription['id']}/cancel", json={"at_period_end": False},
                         headers=shopper)
    assert answer.status_code == 200 and answer.get_json()["status"] == "canceled"


def test_vendors_do_not_see_shoppers_ids(client, auth, shopper, emulator):
    vendor, product = _recurring_product(client, auth, emulator)
    _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    [row] = client.get("/api/vendors/me/subscriptions", headers=_vendor_headers(auth, vendor)).get_json()["data"]
    assert "shopper_id" not in row and "order_id" not in (row["latest_invoice"] or {})


def test_a_past_due_subscription_canceled_now_is_not_charged_again(client, auth, shopper, emulator):
    _, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    settle(client, emulator)
    db.session.rollback()
    local = db.session.get(Subscription, subscription["id"])
    _renewals_paid_with(emulator, local.stripe_subscription_id, "pm_card_chargeCustomerFail")
    _renew(client, emulator)
    _renewals_paid_with(emulator, local.stripe_subscription_id, "pm_card_visa")
    canceled = client.post(f"/api/subscriptions/{local.id}/cancel", json={"at_period_end": False}, headers=shopper)
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    _renew(client, emulator, seconds=20 * 86400)  # past every retry Stripe would have made
    assert len(_invoice_orders(local.id)) == 1


def test_the_sweep_adopts_a_subscription_whose_answer_and_events_were_lost(client, auth, shopper, emulator,
                                                                         monkeypatch):
    from marketplace.subscriptions import service

    _, product = _recurring_product(client, auth, emulator)
    _subscribe_losing_the_answer(client, shopper, monkeypatch, product["id"])
    emu(emulator, "POST", "/_emulator/settle")  # its events are never delivered
    db.session.rollback()
    local = db.session.scalar(select(Subscription))
    assert service.sweep() == 0  # within its grace: a retry may still come
    local.created_at = local.created_at - timedelta(minutes=11)
    db.session.commit()
    assert service.sweep() == 1
    db.session.rollback()
    assert db.session.get(Subscription, local.id).status == "active"
    assert [o.status for o in _invoice_orders(local.id)] == ["paid"]
    assert service.sweep() == 0


def test_the_sweep_ends_a_subscription_stripe_never_made_once_its_key_is_forgotten(client, auth, shopper, emulator,
                                                                                 monkeypatch):
    from marketplace import stripe_gateway
    from marketplace.errors import ServiceUnavailable
    from marketplace.subscriptions import service

    _, product = _recurring_product(client, auth, emulator)

    def unreachable(params, key):
        raise ServiceUnavailable()

    monkeypatch.setattr(stripe_gateway, "create_subscription", unreachable)
    assert client.post("/api/subscriptions", json={"product_id": product["id"], "payment_method": "pm_card_visa"},
                       headers=shopper).status_code == 503
    db.session.rollback()
    local = db.session.scalar(select(Subscription))
    local.created_at = local.created_at - timedelta(hours=1)
    db.session.commit()
    assert service.sweep() == 0 and db.session.get(Subscription, local.id).status == "creating"
    db.session.rollback()
    db.session.get(Subscription, local.id).created_at = local.created_at - timedelta(hours=24)
    db.session.commit()
    assert service.sweep() == 1
    db.session.rollback()
    assert db.session.get(Subscription, local.id).status == "incomplete_expired"


def test_canceling_one_subscription_leaves_the_shoppers_other_invoices_collected(client, auth, shopper, emulator):
    _, first_product = _recurring_product(client, auth, emulator)
    vendor, second_product = _recurring_product(client, auth, emulator, price=2000)
    card = _save(client, shopper)
    first = _subscribe(client, shopper, first_product["id"], payment_method=card["id"])
    second = _subscribe(client, shopper, second_product["id"], payment_method=card["id"])
    settle(client, emulator)
    db.session.rollback()
    stripe_second = db.session.get(Subscription, second["id"]).stripe_subscription_id
    _renewals_paid_with(emulator, stripe_second, "pm_card_chargeCustomerFail")
    emu(emulator, "POST", "/_emulator/clock/advance", seconds=MONTH)  # the second's renewal fails
    ended = client.post(f"/api/subscriptions/{first['id']}/cancel", json={"at_period_end": False}, headers=shopper)
    assert ended.status_code == 200 and ended.get_json()["status"] == "canceled"
    settle(client, emulator)
    assert client.get(f"/api/subscriptions/{second['id']}", headers=shopper).get_json()["status"] == "past_due"
    _renewals_paid_with(emulator, stripe_second, "pm_card_visa")
    _renew(client, emulator, seconds=8 * 86400)  # the retries Stripe makes again
    assert client.get(f"/api/subscriptions/{second['id']}", headers=shopper).get_json()["status"] == "active"
    assert len(_invoice_orders(second["id"])) == 2
    assert stripe_balance(emulator, vendor.stripe_account_id) == 2 * 1800


def test_a_stripe_subscription_naming_a_local_one_linked_to_another_is_not_applied(client, auth, shopper, emulator):
    from marketplace.subscriptions import service

    _, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    db.session.rollback()
    linked = db.session.get(Subscription, subscription["id"]).stripe_subscription_id
    stray = {"id": "sub_stray", "status": "canceled", "metadata": {"subscription_id": subscription["id"]},
             "items": {"data": []}, "cancel_at_period_end": False, "canceled_at": None, "latest_invoice": None}
    assert service._apply(stray, utcnow()) is None
    db.session.rollback()
    local = db.session.get(Subscription, subscription["id"])
    assert (local.stripe_subscription_id, local.status) == (linked, "active")


def test_a_payout_run_leaves_what_an_open_fee_collection_will_take(client, auth, shopper, admin, emulator,
                                                                    monkeypatch):
    from tests.payouts_helpers import follow_emulator_clock, payouts_of

    follow_emulator_clock(monkeypatch, emulator)
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers/", mode="error", count=50, method="POST")
    vendor, subscription = _fixed_fee_subscription(client, auth, shopper, emulator)
    settle(client, emulator)
    [collection] = _fee_collections()
    assert collection.status == "unknown"  # Stripe answers 5xx: not made yet
    _renew(client, emulator, seconds=8 * 86400)  # the first invoice's funds are available
    run = client.post("/api/admin/payout-runs", json={"currency": "usd"}, headers=admin)
    assert run.status_code in (201, 202), run.get_json()
    settle(client, emulator)
    assert [p.amount for p in payouts_of(vendor)] == [1750]  # not 1800: 50 is the collection's
    requests.delete(f"{emulator.url}/_emulator/faults", timeout=10)
    _sweep_until_done()
    [collection] = _fee_collections()
    assert collection.status == "succeeded"
    assert stripe_balance(emulator, vendor.stripe_account_id) == 0  # never below
    _ledger_equals_stripe(emulator, [vendor])


@pytest.mark.parametrize("with_fee", [True, False])
def test_a_dashboard_refund_after_the_fee_collection_returns_the_collected_fee(client, auth, shopper, admin,
                                                                               emulator, with_fee):
    vendor, subscription = _fixed_fee_subscription(client, auth, shopper, emulator)
    settle(client, emulator)
    [first] = _invoice_orders(subscription["id"])
    charge = db.session.scalar(select(Payment.stripe_charge_id).where(Payment.order_id == first.id))
    emu(emulator, "POST", "/v1/refunds", charge=charge, reverse_transfer="true",
        **({"refund_application_fee": "true"} if with_fee else {}))  # made in the Dashboard
    settle(client, emulator)
    _ledger_equals_stripe(emulator, [vendor])
    revenue = client.get("/api/admin/reports/revenue", headers=admin).get_json()["data"]
    # The whole fee goes back with a full refund (Stripe's part only with refund_application_fee;
    # without it the vendor bears Stripe's application fee, as Stripe has it).
    assert [r["platform_fees"] for r in revenue] == [0 if with_fee else 200]
    assert stripe_balance(emulator, vendor.stripe_account_id) == (0 if with_fee else -200)


def test_a_dashboard_refund_before_the_fee_collection_ends_it_unmade(client, auth, shopper, admin, emulator):
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers/", mode="error", count=50, method="POST")
    vendor, subscription = _fixed_fee_subscription(client, auth, shopper, emulator)
    settle(client, emulator)
    [first] = _invoice_orders(subscription["id"])
    charge = db.session.scalar(select(Payment.stripe_charge_id).where(Payment.order_id == first.id))
    requests.delete(f"{emulator.url}/_emulator/faults", timeout=10)
    emu(emulator, "POST", "/v1/refunds", charge=charge, reverse_transfer="true", refund_application_fee="true")
    settle(client, emulator)
    db.session.rollback()
    for movement in db.session.scalars(select(Movement).where(Movement.kind == "fee_collection")):
        movement.next_attempt_at = utcnow() - timedelta(seconds=1)
        movement.updated_at = utcnow() - timedelta(minutes=5)  # any earlier attempt has settled
    db.session.commit()
    from marketplace.movements import engine

    engine.sweep()
    [collection] = _fee_collections()
    assert (collection.status, collection.last_error) == ("failed", "canceled before it was made")
    transfer = emu(emulator, "GET", f"/v1/transfers/{first.splits[0].stripe_transfer_id}")
    assert [r["metadata"].get("movement_id") for r in transfer["reversals"]["data"]] == [None]  # Stripe's own
    assert stripe_balance(emulator, vendor.stripe_account_id) == 0
    _ledger_equals_stripe(emulator, [vendor])
    revenue = client.get("/api/admin/reports/revenue", headers=admin).get_json()["data"]
    assert [r["platform_fees"] for r in revenue] == [0]


def test_a_read_of_stripe_sent_before_another_never_overwrites_what_the_later_one_showed(
        client, auth, shopper, emulator, monkeypatch):
    """Two events of one subscription handled at once: the first one's read of Stripe comes
    back last, with the state before the change the second one saw."""
    from marketplace import stripe_gateway
    from marketplace.subscriptions import service

    _, product = _recurring_product(client, auth, emulator)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    db.session.rollback()
    stripe_id = db.session.get(Subscription, subscription["id"]).stripe_subscription_id
    retrieve, first = stripe_gateway.retrieve_subscription, []

    def slow_first(*args, **kwargs):
        read = retrieve(*args, **kwargs)
        if not first:  # meanwhile the shopper's cancellation is scheduled, and its event handled
            first.append(read)
            emu(emulator, "POST", f"/v1/subscriptions/{stripe_id}", cancel_at_period_end="true")
            service.handle_subscription_changed({"id": stripe_id, "object": "subscription"})
        return read

    monkeypatch.setattr(stripe_gateway, "retrieve_subscription", slow_first)
    service.handle_subscription_changed({"id": stripe_id, "object": "subscription"})
    assert first and first[0]["cancel_at_period_end"] is False  # the late answer was the older state
    db.session.rollback()
    assert db.session.get(Subscription, subscription["id"]).cancel_at_period_end is True
    shown = client.get(f"/api/subscriptions/{subscription['id']}", headers=shopper).get_json()
    assert shown["cancel_at_period_end"] is True


def test_a_vendor_suspended_during_a_renewals_draft_hour_is_not_paid_by_it(client, auth, shopper, admin, emulator):
    """Stripe made the renewal's draft with the subscription's terms (a destination charge);
    the vendor is suspended before it is finalized: the draft is changed too, so its payment
    is the platform's alone and the vendor's share is held."""
    vendor, product = _recurring_product(client, auth, emulator, price=2000)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    _renew(client, emulator, seconds=31 * 86400 + 60)  # the renewal's draft
    assert client.patch(f"/api/admin/vendors/{vendor.id}", json={"status": "suspended"},
                        headers=admin).status_code == 200
    _renew(client, emulator, seconds=2 * 3600)  # finalized and paid
    first, renewal = _invoice_orders(subscription["id"])
    assert (first.charge_type, renewal.charge_type) == ("destination", "separate_transfers")
    assert renewal.status == "paid" and renewal.splits[0].platform_fee == 200
    assert stripe_balance(emulator, vendor.stripe_account_id) == 1800  # the first invoice's share alone
    assert_balances_match_platform_only(emulator)


def test_a_draft_made_after_a_suspension_before_the_subscription_followed_is_the_platforms(
        client, auth, shopper, admin, emulator):
    """The vendor is suspended but its subscriptions are not changed yet (the job following it
    has not run): the renewal's draft, made as a destination charge, is changed when its
    `invoice.created` is handled."""
    vendor, product = _recurring_product(client, auth, emulator, price=2000)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    settle(client, emulator)
    db.session.rollback()
    suspended = db.session.get(type(vendor), vendor.id)
    suspended.suspended, suspended.status = True, "suspended"  # as set_status does, before its job
    db.session.commit()
    stripe_id = db.session.get(Subscription, subscription["id"]).stripe_subscription_id
    db.session.rollback()
    assert emu(emulator, "GET", f"/v1/subscriptions/{stripe_id}")["transfer_data"]["destination"] == \
        vendor.stripe_account_id
    _renew(client, emulator, seconds=31 * 86400 + 60)
    _renew(client, emulator, seconds=2 * 3600)
    renewal = _invoice_orders(subscription["id"])[-1]
    assert renewal.charge_type == "separate_transfers" and renewal.status == "paid"
    assert stripe_balance(emulator, vendor.stripe_account_id) == 1800
    assert_balances_match_platform_only(emulator)


def test_a_suspended_vendors_renewals_are_held_and_paid_when_it_is_reinstated(client, auth, shopper, admin, emulator):
    vendor, product = _recurring_product(client, auth, emulator, price=2000)
    subscription = _subscribe(client, shopper, product["id"], payment_method="pm_card_visa")
    settle(client, emulator)
    assert client.patch(f"/api/admin/vendors/{vendor.id}", json={"status": "suspended"},
                        headers=admin).status_code == 200
    _renew(client, emulator)
    first, renewal = _invoice_orders(subscription["id"])
    assert (first.charge_type, renewal.charge_type) == ("destination", "separate_transfers")
    assert renewal.status == "paid" and renewal.splits[0].vendor_net == 1800
    assert stripe_balance(emulator, vendor.stripe_account_id) == 1800  # the renewal's share held
    assert_balances_match_platform_only(emulator)
    assert client.patch(f"/api/admin/vendors/{vendor.id}", json={"status": "active"},
                        headers=admin).status_code == 200
    settle(client, emulator)
    assert stripe_balance(emulator, vendor.stripe_account_id) == 2 * 1800
    _renew(client, emulator)
    assert _invoice_orders(subscription["id"])[-1].charge_type == "destination"
    assert stripe_balance(emulator, vendor.stripe_account_id) == 3 * 1800
    assert_balances_match_platform_only(emulator)
