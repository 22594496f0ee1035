"""GET /api/admin/search: objects made through the app's flows are found by their local ids,
Stripe ids, emails and amounts, each hit naming a path an admin can GET; every statement the
search runs is planned on an index (EXPLAIN, after ANALYZE, over enough rows that the planner
chooses as it would in production)."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from marketplace.admin import search
from marketplace.extensions import db
from marketplace.orders.models import OrderSplit
from marketplace.payments.disputes import handle_dispute_created
from marketplace.payments.models import Payment
from marketplace.payouts import service as payouts
from marketplace.webhooks.models import WebhookEvent
from tests.factories import ProductFactory
from tests.payments_helpers import emu, onboarded_vendor, order_for, paid_order, pay
from tests.payouts_helpers import advance, follow_emulator_clock, payouts_of, sell, vendor

pytestmark = pytest.mark.usefixtures("pg_only")


def found(client, admin, q: str) -> list[dict]:
    response = client.get("/api/admin/search", query_string={"q": q}, headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def assert_finds(client, admin, q: str, type_: str, id_: str, shown: bool = True) -> dict:
    """`q` finds the object, and its path answers an admin with it (`shown`: its id is in the body)."""
    hits = {(h["type"], h["id"]): h for h in found(client, admin, q)}
    assert (type_, id_) in hits, (q, list(hits))
    hit = hits[(type_, id_)]
    assert hit["summary"]
    response = client.get(hit["path"], headers=admin)
    assert response.status_code == 200, (hit, response.get_json())
    if shown:
        assert id_ in response.get_data(as_text=True), hit
    return hit


@pytest.mark.needs("emulator")
def test_every_kind_of_id_email_and_amount_finds_its_object(client, auth, emulator, monkeypatch):
    follow_emulator_clock(monkeypatch, emulator)
    shopper_user, shopper = auth.user("shopper", email="search-shopper@example.com")
    _, admin = auth.user("admin")
    seller = vendor(emulator)
    order = sell(client, shopper, seller, 1250, emulator)  # a destination charge of 12.50 USD
    refund = client.post(f"/api/orders/{order['id']}/refunds", headers=admin,
                         json={"amount": 500, "reason": "requested_by_customer"}).get_json()
    separate, _ = paid_order(client, shopper, emulator, [1100, 900])  # separate charges and transfers
    pending = order_for(client, shopper, [seller], [777])
    session = client.post(f"/api/orders/{pending['id']}/checkout-session", headers=shopper).get_json()
    disputed = order_for(client, shopper, [onboarded_vendor(emulator)], [1500])
    assert pay(client, shopper, disputed["id"], "pm_card_createDispute", emulator=emulator).status_code == 200
    db.session.rollback()
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order["id"]))
    disputed_payment = db.session.scalar(select(Payment).where(Payment.order_id == disputed["id"]))
    dispute = emu(emulator, "GET", "/v1/disputes", charge=disputed_payment.stripe_charge_id)["data"][0]
    handle_dispute_created(dispute)
    advance(emulator, 8)
    run = payouts.run_now()
    [payout] = payouts_of(seller)
    succeeded = db.session.scalars(select(WebhookEvent).where(WebhookEvent.type == "payment_intent.succeeded"))
    event = next(e for e in succeeded if json.loads(e.raw_body)["data"]["object"]["id"] == payment.payment_intent_id)

    # Local ids, in any case.
    assert_finds(client, admin, order["id"], "order", order["id"])
    assert_finds(client, admin, order["id"].upper(), "order", order["id"])
    assert_finds(client, admin, payment.id, "payment", payment.id)
    refund_hit = assert_finds(client, admin, refund["id"], "refund", refund["id"])
    assert refund_hit["path"] == f"/api/payments/{payment.id}"  # no route reads one refund
    assert_finds(client, admin, separate["splits"][1]["id"], "order", separate["id"])
    assert_finds(client, admin, payout.id, "payout", payout.id)
    assert_finds(client, admin, run.id, "payout", payout.id)
    assert_finds(client, admin, seller.id, "vendor", seller.id)
    assert_finds(client, admin, shopper_user.id, "user", shopper_user.id)
    assert_finds(client, admin, seller.user_id, "vendor", seller.id)
    # Stripe ids, routed by prefix.
    assert_finds(client, admin, payment.payment_intent_id, "payment", payment.id)
    assert_finds(client, admin, payment.payment_intent_id, "order", order["id"])
    assert_finds(client, admin, payment.stripe_charge_id, "payment", payment.id)
    assert_finds(client, admin, refund["stripe_refund_id"], "refund", refund["id"])
    assert_finds(client, admin, refund["allocations"][0]["stripe_transfer_reversal_id"], "refund", refund["id"])
    assert_finds(client, admin, _split_transfer(separate["splits"][0]["id"]), "order", separate["id"])
    assert_finds(client, admin, payout.stripe_payout_id, "payout", payout.id)
    assert_finds(client, admin, seller.stripe_account_id, "vendor", seller.id)
    assert_finds(client, admin, dispute["id"], "payment", disputed_payment.id)
    assert_finds(client, admin, dispute["id"], "order", disputed["id"])
    assert_finds(client, admin, session["checkout_session_id"], "order", pending["id"])
    assert_finds(client, admin, event.stripe_event_id, "payment", payment.id)  # the event's object
    assert_finds(client, admin, event.id, "payment", payment.id)
    # Emails, in any case: a user, and a vendor by its user (and its own contact address).
    assert_finds(client, admin, "Search-Shopper@EXAMPLE.com", "user", shopper_user.id)
    vendor_email = seller.email.upper()
    assert_finds(client, admin, vendor_email, "vendor", seller.id)
    assert_finds(client, admin, vendor_email, "user", seller.user_id, shown=False)
    # Amounts: minor units in any currency, or a decimal in each currency's exponent.
    for q in ("1250", "12.50", " 12.5 "):
        assert_finds(client, admin, q, "order", order["id"])
        assert_finds(client, admin, q, "payment", payment.id)
    assert_finds(client, admin, "5.00", "refund", refund["id"])
    assert_finds(client, admin, str(payout.amount), "payout", payout.id)
    assert {h["type"] for h in found(client, admin, "12.5")} == {"order", "payment"}
    assert found(client, admin, "12.501") == [] and found(client, admin, "0") == []
    # Shapes it does not know, and ids of nothing, find nothing.
    for q in ("hello", "zz_123", "pi_nothing", "ord_", "12,50", "-1250", "ord_1 2", "nobody@example.com"):
        assert found(client, admin, q) == [], q


def _split_transfer(split_id: str) -> str:
    transfer = db.session.get(OrderSplit, split_id).stripe_transfer_id
    assert transfer.startswith("tr_")
    return transfer


def test_amount_hits_are_newest_first_and_limited(client, auth, monkeypatch):
    _, shopper = auth.user("shopper")
    _, admin = auth.user("admin")
    product = ProductFactory(price=999, stock=100)
    made = [client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]},
                        headers=shopper).get_json()["id"] for _ in range(3)]
    assert [h["id"] for h in found(client, admin, "9.99")] == list(reversed(made))
    assert [h["id"] for h in found(client, admin, "999")] == list(reversed(made))
    monkeypatch.setattr(search, "LIMIT", 2)
    assert [h.id for h in search.search("999")] == list(reversed(made))[:2]


def test_only_admins_search(client, auth):
    assert client.get("/api/admin/search?q=ord_x").status_code == 401
    for role in ("shopper", "vendor"):
        response = client.get("/api/admin/search?q=ord_x", headers=auth.headers(role))
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("query", ["", "?q=", "?q=%20%20%20", "?q=" + "a" * 256, "?q=a%00b"])
def test_a_missing_blank_or_long_query_is_a_validation_error(client, admin, query):
    response = client.get(f"/api/admin/search{query}", headers=admin)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and "q" in error["details"]


def test_a_query_of_255_characters_is_searched(client, admin):
    assert found(client, admin, "ord_" + "a" * 251) == []


def test_amounts_are_read_in_each_currency_exponent():
    assert search.amounts("1250") == [(1250, None)]
    assert search.amounts("12.50") == [(1250, 2), (12500, 3)]
    assert search.amounts("12.0") == [(12, 0), (1200, 2), (12000, 3)]
    assert search.amounts("0.001") == [(1, 3)]
    assert search.amounts("0") == [] and search.amounts("0.00") == [] and search.amounts("12,50") == []


# --- Query plans --------------------------------------------------------------------------------

ROWS = 3000

# Every table a lookup reads, filled with ROWS rows whose ids and Stripe ids are `<prefix>_b<n>`.
BULK = """
INSERT INTO users (id, email, password_hash, role, created_at)
  SELECT 'usr_b' || g, 'bulk' || g || '@example.com', 'x', 'shopper', now() - g * interval '1 second'
  FROM generate_series(1, :n) g;
INSERT INTO vendors (id, user_id, display_name, country, email, stripe_account_id, status, suspended,
                     charges_enabled, payouts_enabled, details_submitted, requirements_due, created_at, updated_at)
  SELECT 'ven_b' || g, 'usr_b' || g, 'Vendor ' || g, 'US', 'Bulk' || g || '@Example.com', 'acct_b' || g,
         'active', false, true, true, true, '[]', now() - g * interval '1 second', now()
  FROM generate_series(1, :n) g;
CREATE TEMPORARY TABLE bulk ON COMMIT DROP AS
  SELECT g, 100 + g AS amount, CASE g % 10 WHEN 0 THEN 'jpy' WHEN 1 THEN 'kwd' ELSE 'usd' END AS currency,
         now() - g * interval '1 second' AS at
  FROM generate_series(1, :n) g;
INSERT INTO orders (id, shopper_id, status, currency, subtotal, total, platform_fee, charge_type,
                    payment_intent_id, created_at, updated_at)
  SELECT 'ord_b' || g, 'usr_b' || g, 'paid', currency, amount, amount, 0, 'destination', 'pi_b' || g, at, at FROM bulk;
INSERT INTO order_splits (id, order_id, vendor_id, position, currency, subtotal, percent_bps, fixed,
                          platform_fee, vendor_net, refunded, status, stripe_transfer_id, created_at)
  SELECT 'spl_b' || g, 'ord_b' || g, 'ven_b' || g, 0, currency, amount, 0, 0, 0, amount, 0, 'transferred',
         'tr_b' || g, at FROM bulk;
INSERT INTO payments (id, order_id, shopper_id, payment_intent_id, client_secret, charge_type, amount, currency,
                      status, stripe_charge_id, confirm_attempts, checkout_session_id, created_at, updated_at)
  SELECT 'pay_b' || g, 'ord_b' || g, 'usr_b' || g, 'pi_b' || g, 'x', 'destination', amount, currency,
         'succeeded', 'ch_b' || g, 1, 'cs_b' || g, at, at FROM bulk;
INSERT INTO refunds (id, order_id, payment_id, amount, currency, reason, status, items, stripe_refund_id,
                     created_at, updated_at)
  SELECT 'rfd_b' || g, 'ord_b' || g, 'pay_b' || g, amount, currency, 'requested_by_customer', 'succeeded', '[]',
         're_b' || g, at, at FROM bulk;
INSERT INTO refund_allocations (id, refund_id, split_id, vendor_id, position, amount, platform_fee_refunded,
                                stripe_transfer_reversal_id, stripe_retransfer_id, stripe_shortfall_reversal_id)
  SELECT 'ral_b' || g, 'rfd_b' || g, 'spl_b' || g, 'ven_b' || g, 0, amount, 0, 'trr_b' || g, 'tr_rb' || g,
         'trr_sb' || g FROM bulk;
INSERT INTO disputes (id, order_id, payment_id, stripe_dispute_id, stripe_charge_id, amount, currency, status,
                      recovery, order_status_before, created_at, updated_at)
  SELECT 'dsp_b' || g, 'ord_b' || g, 'pay_b' || g, 'dp_b' || g, 'ch_b' || g, amount, currency, 'needs_response',
         'vendor', 'paid', at, at FROM bulk;
INSERT INTO dispute_recoveries (id, dispute_id, split_id, vendor_id, position, amount, stripe_transfer_reversal_id,
                                stripe_retransfer_id)
  SELECT 'drc_b' || g, 'dsp_b' || g, 'spl_b' || g, 'ven_b' || g, 0, amount, 'trr_db' || g, 'tr_db' || g FROM bulk;
INSERT INTO payout_runs (id, status, dry_run, payouts_created, total_amount, created_at, vendors_total,
                         shards_total, shards_done)
  SELECT 'prun_b' || g, 'completed', false, 1, amount, at, 1, 1, 1 FROM bulk;
INSERT INTO payouts (id, run_id, vendor_id, dry_run, stripe_account, amount, currency, status, stripe_payout_id,
                     period_end, gross_sales, platform_fees, refunds, disputes, net_amount, order_count,
                     created_at, updated_at)
  SELECT 'pout_b' || g, 'prun_b' || g, 'ven_b' || g, g % 7 = 0, 'acct_b' || g, amount, currency, 'paid',
         'po_b' || g, at, amount, 0, 0, 0, amount, 1, at, at FROM bulk;
INSERT INTO movements (id, kind, status, amount, currency, params, stripe_id, key_generation, attempts,
                       next_attempt_at, order_id, refund_id, dispute_id, payout_id, created_at, updated_at)
  SELECT 'mov_b' || g, 'transfer', 'succeeded', amount, currency, '{}', 'tr_mb' || g, 0, 1, at, 'ord_b' || g,
         CASE WHEN g % 4 = 1 THEN 'rfd_b' || g END, CASE WHEN g % 4 = 2 THEN 'dsp_b' || g END,
         CASE WHEN g % 4 = 3 THEN 'pout_b' || g END, at, at FROM bulk;
INSERT INTO checkout_sessions (id, order_id, attempt, stripe_session_id, url, expires_at, status, created_at,
                               updated_at)
  SELECT 'chk_b' || g, 'ord_b' || g, 0, 'cs_b' || g, 'https://checkout.example/' || g, at, 'complete', at, at
  FROM bulk;
INSERT INTO customers (id, user_id, stripe_customer_id, created_at, updated_at)
  SELECT 'cst_b' || g, 'usr_b' || g, 'cus_b' || g, at, at FROM bulk;
INSERT INTO webhook_events (id, stripe_event_id, type, livemode, source, status, attempts, raw_body, received_at)
  SELECT 'whe_b' || g, 'evt_b' || g, 'payment_intent.succeeded', false, 'webhook', 'processed', 1,
         '{"id": "evt_b' || g || '", "data": {"object": {"id": "pi_b' || g || '", "object": "payment_intent"}}}', at
  FROM bulk;
"""
TABLES = ("users", "vendors", "orders", "order_splits", "payments", "refunds", "refund_allocations", "disputes",
          "dispute_recoveries", "payout_runs", "payouts", "movements", "checkout_sessions", "customers",
          "webhook_events")
AMOUNT_INDEXES = {"ix_orders_total_created_at", "ix_payments_amount_created_at", "ix_refunds_amount_created_at",
                  "ix_payouts_amount_created_at"}

# A query of each shape, a hit it must give, and the indexes its statements must be planned on.
PLANS = [
    ("ord_b17", ("order", "ord_b17"), {"pk_orders"}),
    ("pay_b17", ("payment", "pay_b17"), {"pk_payments"}),
    ("rfd_b17", ("refund", "rfd_b17"), {"pk_refunds"}),
    ("pout_b17", ("payout", "pout_b17"), {"pk_payouts"}),
    ("ven_b17", ("vendor", "ven_b17"), {"pk_vendors"}),
    ("usr_b17", ("vendor", "ven_b17"), {"pk_users", "uq_vendors_user_id"}),
    ("spl_b17", ("order", "ord_b17"), {"pk_order_splits", "pk_orders"}),
    ("chk_b17", ("order", "ord_b17"), {"pk_checkout_sessions", "pk_orders"}),
    ("ral_b17", ("refund", "rfd_b17"), {"pk_refund_allocations", "pk_refunds"}),
    ("dsp_b17", ("payment", "pay_b17"), {"pk_disputes", "pk_payments", "pk_orders"}),
    ("drc_b17", ("payment", "pay_b17"), {"pk_dispute_recoveries", "pk_disputes", "pk_payments"}),
    ("mov_b17", ("refund", "rfd_b17"), {"pk_movements", "pk_refunds", "pk_payouts", "pk_orders"}),
    ("prun_b17", ("payout", "pout_b17"), {"uq_payouts_run_vendor_currency"}),
    ("cst_b17", ("user", "usr_b17"), {"pk_customers", "pk_users"}),
    ("whe_b17", ("payment", "pay_b17"), {"pk_webhook_events", "uq_payments_payment_intent_id"}),
    ("pi_b17", ("order", "ord_b17"), {"uq_payments_payment_intent_id", "uq_orders_payment_intent_id"}),
    ("ch_b17", ("payment", "pay_b17"), {"uq_payments_stripe_charge_id"}),
    ("re_b17", ("refund", "rfd_b17"), {"uq_refunds_stripe_refund_id", "uq_movements_stripe_id"}),
    ("tr_b17", ("order", "ord_b17"), {"uq_order_splits_stripe_transfer_id",
                                      "uq_refund_allocations_stripe_retransfer_id",
                                      "uq_dispute_recoveries_stripe_retransfer_id", "uq_movements_stripe_id"}),
    ("tr_rb17", ("refund", "rfd_b17"), {"uq_refund_allocations_stripe_retransfer_id"}),
    ("tr_db17", ("payment", "pay_b17"), {"uq_dispute_recoveries_stripe_retransfer_id"}),
    ("tr_mb18", ("payment", "pay_b18"), {"uq_movements_stripe_id"}),
    ("trr_b17", ("refund", "rfd_b17"), {"uq_refund_allocations_stripe_transfer_reversal_id",
                                        "uq_refund_allocations_stripe_shortfall_reversal_id",
                                        "uq_dispute_recoveries_stripe_transfer_reversal_id", "uq_movements_stripe_id"}),
    ("trr_sb17", ("refund", "rfd_b17"), {"uq_refund_allocations_stripe_shortfall_reversal_id"}),
    ("po_b17", ("payout", "pout_b17"), {"uq_payouts_stripe_payout_id", "uq_movements_stripe_id"}),
    ("acct_b17", ("vendor", "ven_b17"), {"uq_vendors_stripe_account_id"}),
    ("dp_b17", ("order", "ord_b17"), {"uq_disputes_stripe_dispute_id"}),
    ("cs_b17", ("payment", "pay_b17"), {"uq_checkout_sessions_stripe_session_id", "uq_payments_checkout_session_id"}),
    ("cus_b17", ("user", "usr_b17"), {"uq_customers_stripe_customer_id"}),
    ("evt_b17", ("payment", "pay_b17"), {"uq_webhook_events_stripe_event_id", "uq_payments_payment_intent_id"}),
    ("fr_nothing", None, {"uq_movements_stripe_id"}),
    ("BULK17@example.COM", ("vendor", "ven_b17"), {"uq_users_email", "uq_vendors_user_id", "ix_vendors_lower_email"}),
    ("117", ("order", "ord_b17"), AMOUNT_INDEXES),  # 100 + 17
    ("1.17", ("payment", "pay_b17"), AMOUNT_INDEXES),
    ("0.121", ("refund", "rfd_b21"), AMOUNT_INDEXES),  # 121 fils (g = 21 is in kwd)
    ("110.0", ("payout", "pout_b10"), AMOUNT_INDEXES),  # 110 yen (g = 10 is in jpy)
]


INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan", "Bitmap Heap Scan")


def _plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


def _explain(stmt) -> list[dict]:
    sql = stmt.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    [[plan]] = db.session.execute(sa.text(f"EXPLAIN (FORMAT JSON) {sql}")).one()
    return list(_plan_nodes(plan["Plan"]))


@pytest.fixture
def bulk(app):
    """ROWS rows in every table a lookup reads, and the planner's statistics of them."""
    for statement in filter(str.strip, BULK.split(";\n")):
        db.session.execute(sa.text(statement), {"n": ROWS} if ":n" in statement else {})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"ANALYZE {', '.join(TABLES)}"))


def test_every_lookup_is_planned_on_an_index(bulk):
    """Each shape's statements, as the search ran them: no sequential scan, the expected indexes."""
    problems = []
    for q, hit, indexes in PLANS:
        trace: list = []
        hits = [(h.type, h.id) for h in search.search(q, trace)]
        if hit is not None and hit not in hits:
            problems.append((q, "missing hit", hit, hits))
        used: set[str] = set()
        for stmt in trace:
            nodes = _explain(stmt)
            scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes
                     if "Relation Name" in n or "Index Name" in n]
            if not scans or any(node not in INDEX_SCANS for node, _, _ in scans):
                problems.append((q, str(stmt), scans))
            used |= {index for _, _, index in scans if index}
        if not trace or not indexes <= used:
            problems.append((q, "indexes not used", indexes - used))
    assert problems == []
