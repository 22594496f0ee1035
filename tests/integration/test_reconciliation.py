"""Reconciliation runs: the admin API, validation, the CLI, reruns, RQ fan-out; the revenue report."""
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import func, select

from marketplace import outbox
from marketplace.extensions import db
from marketplace.payments import disputes
from marketplace.payments.models import Payment
from marketplace.reconciliation import service
from marketplace.reconciliation.models import Discrepancy, ReconciliationRun
from tests.payments_helpers import emu, onboarded_vendor, order_for, pay
from tests.reconciliation_helpers import delete_entry, emulator_now, iso, reconcile

pytestmark = pytest.mark.needs("emulator")

RUNS = "/api/admin/reconciliation-runs"


def _paid(client, shopper, sellers, prices, method="pm_card_visa", emulator=None):
    order = order_for(client, shopper, sellers, prices)
    assert pay(client, shopper, order["id"], method, emulator=emulator).status_code == 200
    return order


@pytest.mark.parametrize("body, field", [
    ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
    ({"from": "yesterday", "to": "2026-03-01T00:00:00Z"}, "from"),
    ({"to": "2026-03-01T00:00:00Z"}, "from"),
    ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "accounts": []}, "accounts"),
])
def test_a_bad_window_is_422(client, admin, body, field):
    response = client.post(RUNS, json=body, headers=admin)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


def test_only_admins_and_unknown_runs_404(client, auth, admin):
    body = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}
    assert client.post(RUNS, json=body).status_code == 401
    assert client.post(RUNS, json=body, headers=auth.headers("vendor")).status_code == 403
    assert client.get("/api/admin/reports/revenue", headers=auth.headers("shopper")).status_code == 403
    missing = client.get(f"{RUNS}/rcn_nope", headers=admin)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "reconciliation_run_not_found"


def test_runs_are_listed_and_an_account_job_rerun_counts_once(client, shopper, admin, emulator):
    seller = onboarded_vendor(emulator)
    start = emulator_now(emulator) - 60
    order = _paid(client, shopper, [seller], [1000], emulator=emulator)
    charge = db.session.scalar(select(Payment.stripe_charge_id).where(Payment.order_id == order["id"]))
    bt = emu(emulator, "GET", "/v1/charges/" + charge)["balance_transaction"]
    delete_entry(bt)
    run = reconcile(client, admin, start, emulator_now(emulator) + 60)
    assert run["counts"] == {"matched": 3, "missing_in_ledger": 1, "missing_in_stripe": 0, "amount_mismatch": 0}
    assert run["from"] == iso(start) and run["accounts_checked"] == 2

    for _ in range(2):  # at-least-once delivery: the same account job again, twice
        service.reconcile_account(run["id"], "platform")
    again = client.get(f"{RUNS}/{run['id']}", headers=admin).get_json()
    assert again["counts"] == run["counts"] and again["accounts_checked"] == 2
    assert [d["balance_transaction_id"] for d in again["discrepancies"]] == [bt]
    assert db.session.scalar(select(func.count()).select_from(Discrepancy)) == 1

    listed = client.get(RUNS, headers=admin).get_json()
    assert [r["id"] for r in listed["data"]] == [run["id"]] and listed["pagination"]["total_items"] == 1


def test_cli_run_prints_progress_and_counts(client, shopper, emulator, app):
    seller = onboarded_vendor(emulator)
    start = emulator_now(emulator) - 60
    _paid(client, shopper, [seller], [2000], emulator=emulator)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reconcile", "run", "--from", iso(start), "--to", iso(emulator_now(emulator) + 60)])
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "matched=4" in result.output and "missing_in_ledger=0" in result.output
    assert db.session.scalar(select(ReconciliationRun.trigger)) == "cli"
    bad = runner.invoke(args=["reconcile", "run", "--from", "2026-11-02", "--to", "2026-11-01"])
    assert bad.exit_code != 0 and "later than from" in bad.output


def test_the_daily_run_covers_yesterday(app):
    run = service.create_daily_run(datetime(2026, 11, 21, 2, 30, tzinfo=timezone.utc))
    assert (iso(int(run.window_start.timestamp())), iso(int(run.window_end.timestamp()))) == (
        "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
    assert run.status == "queued" and run.trigger == "schedule"


def test_fan_out_through_rq(redis_app, emulator, monkeypatch):
    """One job per account on a real Redis; the last one to finish completes the run."""
    from rq import SimpleWorker

    from marketplace import queue
    from marketplace.extensions import db as _db

    requests.post(f"{emulator.url}/_emulator/reset", timeout=10).raise_for_status()
    redis_app.config["STRIPE_API_BASE"] = emulator.url
    redis_app.extensions.pop("stripe_client", None)
    sellers = [onboarded_vendor(emulator) for _ in range(2)]
    start = emulator_now(emulator) - 60
    run = service.create_run(*[datetime.fromtimestamp(t, timezone.utc) for t in (start, emulator_now(emulator) + 60)])
    outbox.relay_if_committed()
    worker = SimpleWorker([queue.get_queue()], connection=queue.get_redis())
    for _ in range(3):  # start_run, then the account jobs it relayed
        worker.work(burst=True)
        outbox.relay()
    _db.session.rollback()
    done = _db.session.get(ReconciliationRun, run.id)
    assert done.status == "completed" and done.accounts_checked == done.accounts_total == 1 + len(sellers)


def test_revenue_report_matches_hand_computed_figures(client, shopper, admin, emulator):
    alice, bob = onboarded_vendor(emulator), onboarded_vendor(emulator)
    solo = _paid(client, shopper, [alice], [1000], emulator=emulator)  # fee 100 (10%), Stripe 59
    _paid(client, shopper, [alice, bob], [3000, 2000], emulator=emulator)  # fees 300 + 200, Stripe 175
    disputed = _paid(client, shopper, [bob], [2500], "pm_card_createDispute", emulator=emulator)  # fee 250, Stripe 103 + 1500
    refund = client.post(f"/api/orders/{solo['id']}/refunds", json={"amount": 500, "reason": "duplicate"}, headers=admin)
    assert refund.status_code == 201  # returns half the application fee: 50
    charge = db.session.scalar(select(Payment.stripe_charge_id).where(Payment.order_id == disputed["id"]))
    disputes.handle_dispute_created(next(d for d in emu(emulator, "GET", "/v1/disputes")["data"] if d["charge"] == charge))
    outbox.relay()

    report = client.get("/api/admin/reports/revenue", headers=admin)
    assert report.status_code == 200
    assert report.get_json()["data"] == [{
        "currency": "usd", "gross_volume": 8500, "platform_fees": 50 + 500 + 250,
        "stripe_fees": 59 + 175 + 103 + 1500, "refunds": 500, "disputes": 2500,
        "net_revenue": 800 - 1837,
    }]
    later = iso(emulator_now(emulator) + 3600)
    empty = client.get(f"/api/admin/reports/revenue?from={later}", headers=admin)
    assert empty.get_json() == {"data": []}
    assert client.get(f"/api/admin/reports/revenue?from={later}&to=2020-01-01T00:00:00Z", headers=admin).status_code == 422


def test_a_stripe_outage_fails_the_run_and_the_retried_job_completes_it(client, shopper, admin, emulator):
    seller = onboarded_vendor(emulator)
    start = emulator_now(emulator) - 60
    _paid(client, shopper, [seller], [1000], emulator=emulator)
    window = [datetime.fromtimestamp(t, timezone.utc) for t in (start, emulator_now(emulator) + 60)]
    run = service.create_run(*window)
    service.start(run.id, fan_out=False)
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/balance_transactions", mode="error", count=10)
    with pytest.raises(Exception):
        service.reconcile_account(run.id, "platform")
    assert client.get(f"{RUNS}/{run.id}", headers=admin).get_json()["status"] == "failed"
    requests.delete(f"{emulator.url}/_emulator/faults", timeout=10)
    for key in ("platform", seller.stripe_account_id):
        service.reconcile_account(run.id, key)
    done = client.get(f"{RUNS}/{run.id}", headers=admin).get_json()
    assert done["status"] == "completed" and done["counts"]["matched"] == 4 and done["last_error"] is None


def test_the_daily_reconciliation_is_scheduled():
    from marketplace import queue
    from marketplace.worker import SCHEDULE

    (entry,) = [e for e in SCHEDULE if e.name == "daily-reconciliation"]
    assert callable(queue.resolve(entry.job))
