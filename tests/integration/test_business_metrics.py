"""/metrics in one process: the token, and the business figures read from the database at
each scrape (marketplace/business_metrics.py), each from an index."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from marketplace import business_metrics, tasks
from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.movements.models import Movement
from marketplace.outbox import OutboxMessage
from marketplace.payouts.models import Payout, PayoutRun
from marketplace.webhooks.models import WebhookEvent
from tests.conftest import make_app
from tests.factories import VendorFactory
from tests.payments_helpers import order_for, paid_order, pay

TOKEN = "mtk_" + "A1b2-C3d4.E5f6_G7h8~I9j0+K/" * 2


def samples(client, headers=None) -> dict:
    """{(name, ((label, value), ...)): value} of one scrape."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def money(figures, name, currency, status) -> float:
    return figures[(name, (("currency", currency), ("status", status)))]


@pytest.mark.settings(METRICS_TOKEN=TOKEN)
@pytest.mark.parametrize("header", [None, "Bearer", f"Bearer {TOKEN}x", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}",
                                    "Bearer é"])
def test_with_a_token_set_metrics_refuses_any_other_answer(client, header):
    response = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.get_json() == {"error": {"code": "unauthorized", "message": "A valid metrics token is required.",
                                             "details": {}}}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.settings(METRICS_TOKEN=TOKEN)
def test_with_a_token_set_metrics_answers_its_bearer(client):
    figures = samples(client, {"Authorization": f"bearer {TOKEN}"})
    assert figures[("marketplace_business_metrics_up", ())] == 1.0


def test_without_a_token_metrics_is_open(client):
    assert client.get("/metrics").status_code == 200


def _rows(now):
    vendor, other = VendorFactory(), VendorFactory()
    run, dry = PayoutRun(status="completed"), PayoutRun(status="completed", dry_run=True)
    db.session.add_all([run, dry])
    db.session.flush()
    payout = dict(stripe_account="acct_x", period_end=now)
    db.session.add_all([
        Payout(run_id=run.id, vendor_id=vendor.id, amount=700, currency="usd", status="paid", **payout),
        Payout(run_id=run.id, vendor_id=other.id, amount=300, currency="usd", status="paid", **payout),
        Payout(run_id=run.id, vendor_id=vendor.id, amount=900, currency="eur", status="in_transit", **payout),
        Payout(run_id=dry.id, vendor_id=vendor.id, amount=5000, currency="usd", status="pending", dry_run=True,
               **payout),  # a dry run pays nothing
    ])
    event = dict(type="charge.updated", raw_body="{}")
    db.session.add_all([
        WebhookEvent(stripe_event_id="evt_old", status="received", received_at=now - timedelta(seconds=90), **event),
        WebhookEvent(stripe_event_id="evt_new", status="received", received_at=now - timedelta(seconds=5), **event),
        WebhookEvent(stripe_event_id="evt_failed", status="failed", received_at=now - timedelta(hours=2), **event),
        WebhookEvent(stripe_event_id="evt_done_early", status="processed", received_at=now - timedelta(hours=1),
                     processed_at=now - timedelta(minutes=50), **event),
        WebhookEvent(stripe_event_id="evt_done", status="processed", received_at=now - timedelta(seconds=30),
                     processed_at=now - timedelta(seconds=28), **event),
    ])
    job = dict(job=tasks.REAP_IDEMPOTENCY_KEYS, created_at=now - timedelta(hours=3))
    db.session.add_all([
        OutboxMessage(available_at=now - timedelta(seconds=40), **job),
        OutboxMessage(available_at=now - timedelta(seconds=10), **job),
        OutboxMessage(available_at=now + timedelta(hours=1), **job),  # a retry waiting: not late
        OutboxMessage(available_at=now - timedelta(hours=2), dispatched_at=now - timedelta(minutes=1), **job),
        OutboxMessage(available_at=now - timedelta(hours=2), dispatched_at=now, done_at=now, **job),
        OutboxMessage(available_at=now - timedelta(hours=2), dead_at=now, **job),
    ])
    move = dict(stripe_account=None, params={})
    db.session.add_all([
        Movement(kind="payout", status="needs_attention", amount=1200, currency="usd", **move),
        Movement(kind="payout", status="needs_attention", amount=800, currency="usd", **move),
        Movement(kind="transfer_reversal", status="unknown", amount=50, currency="eur", **move),
        Movement(kind="transfer", status="succeeded", amount=999, currency="usd", **move),
    ])
    db.session.commit()


def test_the_figures_are_the_databases(client):
    now = utcnow()
    _rows(now)
    figures = samples(client)
    assert money(figures, "marketplace_payouts_amount", "usd", "paid") == 1000
    assert money(figures, "marketplace_payouts", "usd", "paid") == 2
    assert money(figures, "marketplace_payouts_amount", "eur", "in_transit") == 900
    assert money(figures, "marketplace_payouts_amount", "usd", "pending") == 0  # the dry run's
    assert money(figures, "marketplace_payouts", "gbp", "failed") == 0  # every currency and status is there

    assert {status: figures[("marketplace_webhook_events", (("status", status),))]
            for status in ("received", "processed", "failed", "ignored")} == {
        "received": 2, "processed": 2, "failed": 1, "ignored": 0}
    assert 90 <= figures[("marketplace_webhook_oldest_unprocessed_age_seconds", ())] < 120
    assert figures[("marketplace_webhook_last_processed_lag_seconds", ())] == pytest.approx(2, abs=0.01)

    assert figures[("marketplace_outbox_undelivered", ())] == 2
    assert figures[("marketplace_outbox_scheduled", ())] == 1
    assert 40 <= figures[("marketplace_outbox_oldest_undelivered_age_seconds", ())] < 70  # due, not created
    assert figures[("marketplace_outbox_unfinished", ())] == 1

    attention = {labels: value for (name, labels), value in figures.items()
                 if name == "marketplace_movements_needing_attention_amount"}
    assert attention == {(("currency", "usd"), ("kind", "payout"), ("status", "needs_attention")): 2000,
                         (("currency", "eur"), ("kind", "transfer_reversal"), ("status", "unknown")): 50}
    assert figures[("marketplace_movements_needing_attention",
                    (("currency", "usd"), ("kind", "payout"), ("status", "needs_attention")))] == 2
    assert figures[("marketplace_movements", (("status", "needs_attention"),))] == 2
    assert figures[("marketplace_movements", (("status", "planned"),))] == 0
    assert figures[("marketplace_business_metrics_up", ())] == 1


@pytest.mark.needs("emulator")
def test_payments_and_refunds_by_currency_and_status(client, shopper, admin, emulator):
    order, sellers = paid_order(client, shopper, emulator, [2500, 1500])
    declined = order_for(client, shopper, sellers, [999])
    pay(client, shopper, declined["id"], "pm_card_chargeDeclined", emulator=emulator)
    refunded = client.post(f"/api/orders/{order['id']}/refunds", json={"reason": "requested_by_customer",
                                                                       "amount": 1000}, headers=admin)
    assert refunded.status_code == 201, refunded.get_json()
    figures = samples(client)
    currency = order["currency"]
    assert money(figures, "marketplace_payments_amount", currency, "succeeded") == order["total"] == 4000
    assert money(figures, "marketplace_payments", currency, "succeeded") == 1
    assert money(figures, "marketplace_payments_amount", currency, "failed") == 999
    assert money(figures, "marketplace_payments", currency, "failed") == 1
    status = refunded.get_json()["status"]
    assert money(figures, "marketplace_refunds_amount", currency, status) == 1000
    assert money(figures, "marketplace_refunds", currency, status) == 1


def test_every_read_is_served_by_an_index(app, pg_only):
    """With sequential scans priced out, no plan still reads a table from end to end."""
    statements = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        if not statement.startswith("SET"):
            statements.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", remember)
    try:
        business_metrics.read(db.session)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", remember)
        db.session.rollback()
    assert len(statements) >= 9
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, parameters in statements:
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert "Seq Scan" not in plan, (statement, plan)


def test_a_scrape_while_the_database_is_down_still_answers(migrated):
    broken = make_app("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with broken.app_context():
        client = broken.test_client()
        client.get("/healthz")
        figures = samples(client)
    assert figures[("marketplace_business_metrics_up", ())] == 0
    assert figures[("http_requests_total", (("endpoint", "/healthz"), ("method", "GET"), ("status", "200")))] == 1
    assert not any(name.startswith("marketplace_payments") for name, _ in figures)


def test_the_grafana_dashboard_queries_only_what_one_process_exposes(client):
    from tests.integration.test_metrics_multiprocess import dashboard_queries, exposed_names

    client.get("/healthz")
    assert dashboard_queries() - exposed_names(client.get("/metrics").get_data(as_text=True)) == set()
