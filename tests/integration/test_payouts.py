"""Payout runs through the emulator: amounts from the ledger, Stripe payouts, webhooks, dry runs."""
import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import JournalEntry
from marketplace.payouts import service
from marketplace.payouts.locking import run_lock
from marketplace.payouts.models import Payout
from marketplace.webhooks import handlers
from tests.payments_helpers import emu
from tests.payouts_helpers import (
    FAILING_BANK, advance, available_on_stripe, follow_emulator_clock, ledger_balance, payouts_of, sell,
    stripe_payouts, vendor,
)

pytestmark = pytest.mark.needs("emulator")


@pytest.fixture(autouse=True)
def _emulator_clock(monkeypatch, emulator):
    follow_emulator_clock(monkeypatch, emulator)


def deliver_events(emulator, seller, type_: str) -> int:
    """Hand the account's `type_` events, as Stripe sent them, to the webhook dispatcher."""
    events = emu(emulator, "GET", "/v1/events", account=seller.stripe_account_id, type=type_)["data"]
    for event in events:
        handlers.dispatch(event)
        handlers.dispatch(event)  # a duplicate delivery changes nothing
    return len(events)


def test_a_run_pays_each_vendor_its_ledger_balance_and_a_failed_payout_comes_back(client, shopper, emulator):
    alice, bob, carol = vendor(emulator), vendor(emulator), vendor(emulator, bank=FAILING_BANK)
    for seller, prices in ((alice, [1000, 2500]), (bob, [4000]), (carol, [3000])):
        for price in prices:
            sell(client, shopper, seller, price, emulator)
    advance(emulator, 3)
    young = sell(client, shopper, alice, 700, emulator)  # inside the hold: waits for a later run
    advance(emulator, 5)  # 8 days after the first sales, 5 after the young one
    owed = {s.id: ledger_balance(s) for s in (alice, bob, carol)}
    assert owed[alice.id] > 0 and owed[bob.id] > 0

    run = service.run_now()
    assert run.status == "completed" and run.payouts_created == 3
    young_net = young["splits"][0]["vendor_net"]
    for seller in (alice, bob, carol):
        (payout,) = payouts_of(seller)
        expected = owed[seller.id] - (young_net if seller is alice else 0)
        (on_stripe,) = stripe_payouts(emulator, seller)
        assert payout.amount == expected == on_stripe["amount"] and payout.stripe_payout_id == on_stripe["id"]
        assert payout.breakdown["net_amount"] == expected and payout.order_count == (2 if seller is alice else 1)
        b = payout.breakdown
        assert b["gross_sales"] - b["platform_fees"] - b["refunds"] - b["disputes"] == b["net_amount"]
        assert ledger_balance(seller) == owed[seller.id] - expected
    assert run.total_amount == sum(p.amount for s in (alice, bob, carol) for p in payouts_of(s))

    advance(emulator, 1.1)  # pending -> in transit -> paid (or failed)
    assert deliver_events(emulator, alice, "payout.paid") == 1
    assert deliver_events(emulator, bob, "payout.paid") == 1
    assert deliver_events(emulator, carol, "payout.failed") == 1
    assert payouts_of(alice)[0].status == "paid" and payouts_of(alice)[0].paid_at is not None
    failed = payouts_of(carol)[0]
    assert failed.status == "failed" and failed.failure_code == "no_account"
    assert ledger_balance(carol) == owed[carol.id] == available_on_stripe(emulator, carol)
    # Paid then failed-late events never take a payout back.
    assert service.handle_payout_paid({"id": failed.stripe_payout_id}, carol.stripe_account_id).status == "failed"

    emu(emulator, "POST", f"/v1/accounts/{carol.stripe_account_id}", external_account="btok_us_verified")
    advance(emulator, 2.1)  # alice's young sale is past the hold now
    second = service.run_now()
    assert second.status == "completed" and second.payouts_created == 2
    assert sum(p["amount"] for p in stripe_payouts(emulator, carol) if p["status"] != "failed") == owed[carol.id]
    assert [p.amount for p in payouts_of(alice) if p.run_id == second.id] == [young_net]
    for seller in (alice, bob, carol):
        assert ledger_balance(seller) == 0 == available_on_stripe(emulator, seller)


def test_a_dry_run_creates_nothing_on_stripe_and_posts_nothing(client, shopper, emulator):
    seller = vendor(emulator)
    sell(client, shopper, seller, 5000, emulator)
    advance(emulator, 8)
    entries = db.session.scalar(select(func.count()).select_from(JournalEntry))
    run = service.run_now(dry_run=True)
    assert run.status == "completed" and run.dry_run and run.payouts_created == 1
    assert run.payouts[0].amount == ledger_balance(seller) and run.payouts[0].dry_run
    assert stripe_payouts(emulator, seller) == [] and payouts_of(seller) == []
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)) == entries
    assert service.run_now().payouts_created == 1  # the real run still pays it


def test_a_payout_is_capped_at_the_stripe_available_balance(client, shopper, emulator, monkeypatch):
    from marketplace import stripe_gateway

    seller = vendor(emulator)
    sell(client, shopper, seller, 5000, emulator)
    advance(emulator, 8)
    owed = ledger_balance(seller)
    monkeypatch.setattr(stripe_gateway, "retrieve_balance",
                        lambda account: {"available": [{"amount": 1234, "currency": "usd"}], "pending": []})
    service.run_now()
    assert [p.amount for p in payouts_of(seller)] == [1234] and ledger_balance(seller) == owed - 1234


def test_admin_runs_vendor_payouts_and_the_lock(app, client, auth, emulator):
    user, headers = auth.user("vendor")
    seller, shopper, admin = vendor(emulator, user=user), auth.headers("shopper"), auth.headers("admin")
    sell(client, shopper, seller, 2000, emulator)
    advance(emulator, 8)
    created = client.post("/api/admin/payout-runs", json={"currency": "usd"}, headers=admin)
    assert created.status_code == 202, created.get_json()
    run_id = created.get_json()["id"]
    detail = client.get(f"/api/admin/payout-runs/{run_id}", headers=admin).get_json()
    assert detail["status"] == "completed" and detail["currency"] == "usd" and len(detail["payouts"]) == 1
    payout = detail["payouts"][0]
    assert payout["amount"] == detail["total_amount"] and payout["stripe_payout_id"].startswith("po_")
    assert set(payout["breakdown"]) == {"gross_sales", "platform_fees", "refunds", "disputes", "net_amount"}
    assert payout["breakdown"]["gross_sales"] == 2000 and payout["order_count"] == 1
    listed = client.get("/api/admin/payout-runs", headers=admin).get_json()
    assert [r["id"] for r in listed["data"]] == [run_id]
    mine = client.get("/api/vendors/me/payouts", headers=headers).get_json()
    assert [p["id"] for p in mine["data"]] == [payout["id"]]
    assert mine["summary"]["total_pending"] == payout["amount"] and mine["summary"]["total_paid"] == 0
    assert mine["summary"]["next_payout_date"].endswith("Z") and mine["pagination"]["total_items"] == 1
    assert client.get("/api/vendors/me/payouts?status=paid", headers=headers).get_json()["data"] == []
    assert client.get("/api/admin/payout-runs/prun_nope", headers=admin).status_code == 404
    assert client.post("/api/admin/payout-runs", json={}, headers=headers).status_code == 403
    with run_lock() as acquired:
        assert acquired
        busy = client.post("/api/admin/payout-runs", json={"dry_run": True}, headers=admin)
        assert busy.status_code == 409 and busy.get_json()["error"]["code"] == "payout_run_in_progress"
        cli = app.test_cli_runner().invoke(args=["payouts", "run"])
        assert cli.exit_code != 0 and "another payout run is in progress" in cli.output
    cli = app.test_cli_runner().invoke(args=["payouts", "run", "--dry-run", "--currency", "USD"])
    assert cli.exit_code == 0 and "completed: would pay 0 payout(s)" in cli.output
    assert db.session.query(Payout).filter_by(dry_run=False).count() == 1
