"""Chaos: randomized marketplace flows on PostgreSQL and Redis, with a real worker process,
while 20 % of the requests that move money fail (a 500 before Stripe acts, a 429, or the
answer lost after Stripe acted), Redis is flushed half-way and the worker is killed (-9)
later on. Then, the faults off, the system is let finish, and what must hold is checked:
no Stripe object made twice for one movement, none without its movement, no movement left
unfinished (final, or needing attention with its reason), each vendor holding its share of
what the shopper kept, every balance on the ledger equal to Stripe's, payouts made once,
and reconciliation clean.

CHAOS_FLOWS and CHAOS_SEED (environment) change the number of flows and the sequence; a
failure prints the seed to run it again.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from redis import Redis
from sqlalchemy import func, select, update

from marketplace import outbox, queue
from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.movements import engine
from marketplace.movements.models import Movement
from marketplace.orders.models import Order, OrderSplit
from marketplace.payments.models import Dispute
from marketplace.outbox import OutboxMessage
from marketplace.payouts import service as payouts
from marketplace.payouts.models import Payout
from marketplace.webhooks import service as webhooks
from marketplace.webhooks.handlers import HANDLERS
from marketplace.webhooks.models import WebhookEvent
from tests.payments_helpers import _taken_back, emu, onboarded_vendor, order_for, pay, settle, stripe_balance
from tests.payouts_helpers import advance, follow_emulator_clock
from tests.reconciliation_helpers import emulator_now, iso

pytestmark = pytest.mark.needs("emulator", "redis")

FLOWS = int(os.environ.get("CHAOS_FLOWS", "200"))
SEED = int(os.environ.get("CHAOS_SEED", "20261202"))
FAULT_RATE = 0.2
# Attempts before a movement needs attention (10 by default): fewer, as the finish below
# makes hours pass in seconds; 20 % faults fail five attempts in a row once in 3125.
MAX_ATTEMPTS = 5
VENDORS = 12  # each flow sells for one to three of them: their balances mix many sales
MONEY_PATHS = ("/v1/transfers", "/v1/refunds", "/v1/payouts")  # reversals are /v1/transfers/{id}/reversals
FAULT_MODES = ("error", "rate_limit", "lost")
ACTIONS = {"none": 2, "partial": 3, "two_partials": 2, "items": 2, "full": 2, "failed_refund": 2,
           "dispute_won": 1, "dispute_lost": 1}
ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBED = frozenset(HANDLERS)  # the endpoint's enabled events: what the app handles


@dataclass
class Flow:
    order: dict
    sellers: list
    action: str
    notes: list = field(default_factory=list)


def _arm_faults(emulator, paths=MONEY_PATHS) -> None:
    """Each path fails FAULT_RATE of its POSTs, the modes in equal shares (seeded)."""
    share = 1 - (1 - FAULT_RATE) ** (1 / len(FAULT_MODES))  # three faults in turn: FAULT_RATE in all
    for path in paths:
        for mode in FAULT_MODES:
            emu(emulator, "POST", "/_emulator/faults", path_prefix=path, mode=mode, method="POST",
                count=100_000, probability=share, seed=f"{SEED}-{path}-{mode}")


def _faults_tripped(emulator) -> int:
    return sum(f["tripped"] for f in emu(emulator, "GET", "/_emulator/faults")["data"])


def _clear_faults(emulator) -> None:
    requests.delete(f"{emulator.url}/_emulator/faults", timeout=10).raise_for_status()


class Worker:
    """`flask worker` in its own process, on the test's database, Redis and emulator."""

    def __init__(self, database_url: str, redis_url: str, emulator, log_path: Path):
        self.env = {**os.environ, "APP_ENV": "testing", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                    "STRIPE_API_BASE": emulator.url, "OUTBOX_RELAY_INTERVAL": "1", "LOG_LEVEL": "WARNING",
                    "MOVEMENT_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
                    "FLASK_APP": "wsgi"}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "flask", "worker"], cwd=ROOT, env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        """kill -9: whatever it was doing is cut short."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _flow(rng: random.Random, client, shopper, admin, emulator, vendors: list) -> Flow:
    sellers = rng.sample(vendors, rng.choice((1, 1, 2, 2, 3)))
    prices = [rng.randrange(500, 6000) for _ in range(len(sellers) + rng.randrange(0, 2))]
    action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
    order = order_for(client, shopper, sellers, prices)
    method = "pm_card_createDispute" if action.startswith("dispute") else "pm_card_visa"
    paid = pay(client, shopper, order["id"], method)
    assert paid.status_code == 200, paid.get_json()
    flow = Flow(client.get(f"/api/orders/{order['id']}", headers=shopper).get_json(), sellers, action)
    if rng.random() < 0.5:  # the charge settles (and its events arrive) before, or after, the action
        settle(client, emulator, SUBSCRIBED)
    _act(rng, flow, client, admin, emulator)
    return flow


def _refund(client, admin, flow: Flow, **body) -> dict:
    answer = client.post(f"/api/orders/{flow.order['id']}/refunds",
                         json={"reason": "requested_by_customer", **body}, headers=admin)
    assert answer.status_code == 201, (flow.action, body, answer.get_json())  # committed: the refund itself
    flow.notes.append((body, answer.get_json()["status"]))
    return answer.get_json()


def _act(rng: random.Random, flow: Flow, client, admin, emulator) -> None:
    total = flow.order["total"]
    if flow.action == "partial":
        _refund(client, admin, flow, amount=rng.randrange(1, total))
    elif flow.action == "two_partials":
        first = rng.randrange(1, total - 1)
        _refund(client, admin, flow, amount=first)
        _refund(client, admin, flow, amount=rng.randrange(1, total - first + 1))
    elif flow.action == "items":
        line = rng.choice(flow.order["items"])
        _refund(client, admin, flow, items=[{"order_item_id": line["id"], "quantity": 1}])
    elif flow.action == "full":
        _refund(client, admin, flow)
    elif flow.action == "failed_refund":
        _refund(client, admin, flow, amount=rng.randrange(1, total))
        made = _stripe_refunds(emulator, flow)  # its answer may be lost: failed once Stripe made it
        if made:
            emu(emulator, "POST", f"/_emulator/refunds/{made[0]['id']}/fail")
        left = total - flow.notes[0][0]["amount"]  # what the first may still take, if it had not failed
        if left and rng.random() < 0.5:
            settle(client, emulator, SUBSCRIBED)
            _refund(client, admin, flow, amount=rng.randrange(1, left + 1))  # and refunded again
    elif flow.action.startswith("dispute"):
        settle(client, emulator, SUBSCRIBED)  # the dispute opens: the vendors' shares are taken back
        disputes = emu(emulator, "GET", "/v1/disputes", limit=100)["data"]
        [dispute] = [d for d in disputes if d["charge"] == flow.order["payment"]["stripe_charge_id"]]
        emu(emulator, "POST", f"/_emulator/disputes/{dispute['id']}/close", outcome=flow.action.split("_")[1])


def _stripe_refunds(emulator, flow: Flow) -> list[dict]:
    charge = flow.order["payment"]["stripe_charge_id"]
    return emu(emulator, "GET", "/v1/refunds", charge=charge, limit=100)["data"]


def _finish(client, emulator, rounds: int = 40) -> int:
    """Let the system finish what it has to do, as its worker would over the next hours:
    Stripe's events delivered, jobs lost with Redis handed off again, stalled events
    re-queued, due movements driven. Returns the rounds it took."""
    from rq import SimpleWorker

    for round_ in range(1, rounds + 1):
        settle(client, emulator, SUBSCRIBED)
        db.session.execute(update(OutboxMessage).where(OutboxMessage.done_at.is_(None),
                                                       OutboxMessage.dispatched_at.is_not(None))
                           .values(dispatched_at=utcnow() - outbox.STALE_AFTER - timedelta(seconds=1)))
        db.session.execute(update(Movement).where(Movement.status.in_(("planned", "unknown")))
                           .values(next_attempt_at=utcnow() - timedelta(seconds=1),
                                   updated_at=utcnow() - timedelta(hours=1)))  # earlier attempts long settled
        db.session.execute(update(Movement).where(Movement.status == "sent")  # a killed driver's lease ran out
                           .values(locked_until=utcnow() - timedelta(seconds=1)))
        db.session.execute(update(WebhookEvent).where(WebhookEvent.status == "received")  # an hour passes:
                           .values(next_attempt_at=utcnow() - webhooks.STALLED_AFTER - timedelta(seconds=1),
                                   locked_until=None))  # leases of killed workers ran out
        db.session.commit()
        webhooks.requeue_stalled()
        outbox.relay(limit=10_000)
        SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)
        swept = engine.sweep(limit=10_000)
        open_now = db.session.scalar(select(func.count()).select_from(Movement)
                                     .where(Movement.status.in_(("planned", "unknown", "sent"))))
        pending = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.done_at.is_(None)))
        received = db.session.scalar(select(func.count()).select_from(WebhookEvent)
                                     .where(WebhookEvent.status == "received"))
        db.session.commit()
        if not (swept or open_now or pending or received) and not settle(client, emulator, SUBSCRIBED):
            return round_
    held = db.session.execute(select(Movement.kind, Movement.status, Movement.last_error)
                              .where(Movement.status.in_(("planned", "unknown", "sent")))).all()
    jobs = db.session.execute(select(OutboxMessage.job, OutboxMessage.attempts, OutboxMessage.available_at,
                                     OutboxMessage.dead_at, OutboxMessage.last_error)
                              .where(OutboxMessage.done_at.is_(None))).all()
    events = db.session.execute(select(WebhookEvent.type, WebhookEvent.attempts, WebhookEvent.last_error)
                                .where(WebhookEvent.status == "received")).all()
    pytest.fail(f"seed {SEED}: not finished after {rounds} rounds: swept {swept}, movements {held[:10]}, "
                f"jobs {jobs[:10]}, events {events[:10]}")


def _money_objects(emulator) -> list[dict]:
    """Every transfer, reversal, refund and payout Stripe holds, on any account."""
    state = emulator.emulator
    with state.lock:
        return [dict(o) for o in state.store.objects.values()
                if o["_kind"] in ("transfer", "transfer_reversal", "refund", "payout")]


def _nothing_twice_nothing_lost(emulator) -> Counter:
    """Each movement's object exists once (a succeeded movement's, exactly once); none exists
    for a movement that failed; none carries an unknown movement. Returns movements by status."""
    db.session.rollback()
    movements = {m.id: m for m in db.session.scalars(select(Movement))}
    objects = _money_objects(emulator)
    made = Counter((o.get("metadata") or {}).get("movement_id") for o in objects)
    made.pop(None, None)
    twice = [m for m, n in made.items() if n > 1]
    assert twice == [], (f"seed {SEED}: made twice", [
        (movements[m].kind, movements[m].status, movements[m].amount, movements[m].attempts,
         movements[m].key_generation, movements[m].last_error, movements[m].stripe_id,
         [(o["id"], o.get("amount"), o.get("created"), o.get("status")) for o in objects
          if (o.get("metadata") or {}).get("movement_id") == m]) for m in twice])
    assert [m for m in made if m not in movements] == [], f"seed {SEED}: made for no movement"
    for movement in movements.values():
        if movement.status == "succeeded" and not movement.by_stripe:
            assert made[movement.id] == 1, (SEED, movement.kind, movement.id, "succeeded but not at Stripe")
        if movement.status in ("failed", "needs_attention"):
            assert made[movement.id] == 0, (SEED, movement.kind, movement.id, movement.status, "made at Stripe")
        assert movement.status in ("succeeded", "failed", "needs_attention"), (SEED, movement.kind, movement.status)
        if movement.status != "succeeded":
            assert movement.last_error, (SEED, movement.kind, movement.id, "no reason given")
    return Counter(m.status for m in movements.values())


def _vendors_hold_their_share(emulator, sellers: list) -> None:
    """Each vendor holds, at Stripe and on the ledger alike, its share of what the shoppers
    kept over all its sales (its net less what refunds took back; nothing of a sale whose
    dispute it bears and did not win), except what a movement needing attention still owes
    it: a retransfer the platform's balance cannot fund (the platform gave back more in
    refunds and dispute fees than it earned), or a reversal it could not make."""
    db.session.rollback()
    stuck = db.session.scalars(select(Movement).where(Movement.status == "needs_attention")).all()
    assert {m.kind for m in stuck} <= {"retransfer", "transfer_reversal"}, [(m.kind, m.last_error) for m in stuck]
    borne = {d.order_id for d in db.session.scalars(select(Dispute).where(Dispute.recovery == "vendor",
                                                                         Dispute.status != "won"))}
    for vendor in sellers:
        splits = db.session.scalars(select(OrderSplit).join(Order).where(
            OrderSplit.vendor_id == vendor.id, Order.status != "pending_payment")).all()
        share = sum(0 if split.order_id in borne else split.vendor_net - _taken_back(split) for split in splits)
        owed = sum(m.amount if m.kind == "retransfer" else -m.amount for m in stuck if m.vendor_id == vendor.id)
        held = stripe_balance(emulator, vendor.stripe_account_id)
        assert held == ledger.balance(f"vendor:{vendor.id}:stripe_balance", "usd"), (SEED, vendor.id)
        assert held + owed == share, (SEED, vendor.id, held, owed, share, [
            (m.kind, m.amount, m.attempts, m.refund_id, m.last_error) for m in stuck if m.vendor_id == vendor.id])


def _explain(emulator, run) -> list:
    """Each discrepancy with the Stripe object behind it and that object's movement."""
    out = []
    for finding in run["discrepancies"][:10]:
        obj = emulator.emulator.store.find(finding.get("source_id") or "") or {}
        movement_id = (obj.get("metadata") or {}).get("movement_id")
        movement = db.session.get(Movement, movement_id) if movement_id else None
        out.append((finding["kind"], finding.get("source_id"), finding.get("amount"), obj.get("metadata"),
                    movement and (movement.kind, movement.status, movement.stripe_id, movement.last_error)))
    return out


def _run_state(run_id: str) -> dict:
    """Why a run is not done: its accounts, its jobs in the outbox, and what RQ holds."""
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    from marketplace.reconciliation.models import ReconciliationAccount

    db.session.rollback()
    accounts = [(a.account, a.status, a.attempt, a.last_error) for a in db.session.scalars(
        select(ReconciliationAccount).where(ReconciliationAccount.run_id == run_id))]
    jobs = [(m.job, m.args, m.attempts, bool(m.dispatched_at), bool(m.done_at), m.last_error)
            for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.done_at.is_(None)))]
    rq = queue.get_queue()
    failed = FailedJobRegistry(queue=rq)
    return {"accounts": [a for a in accounts if a[1] != "completed"], "outbox_undone": jobs[:20],
            "rq": {"queued": rq.count, "started": StartedJobRegistry(queue=rq).get_job_ids(),
                   "scheduled": ScheduledJobRegistry(queue=rq).get_job_ids(),
                   "failed": [(job_id, (rq.fetch_job(job_id).exc_info or "")[-300:]) for job_id in
                              failed.get_job_ids()[-5:] if rq.fetch_job(job_id)]}}


def _reconciles(client, admin, emulator, start: int) -> dict:
    from rq import SimpleWorker

    created = client.post("/api/admin/reconciliation-runs", headers=admin,
                          json={"from": iso(start - 3600), "to": iso(emulator_now(emulator) + 3600)})
    assert created.status_code == 202, created.get_json()
    outbox.relay(limit=10_000)
    SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)
    run = client.get(f"/api/admin/reconciliation-runs/{created.get_json()['id']}", headers=admin).get_json()
    assert run["status"] == "completed", (run, _run_state(run["id"]))
    assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
        "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}, (SEED, _explain(emulator, run))
    return run


@pytest.mark.long
def test_chaos(client, auth, admin, emulator, stripe_app, migrated, redis_url, pg_only, monkeypatch, tmp_path):
    rng = random.Random(SEED)
    stripe_app.config["FRAUD_MAX_ORDERS"] = 10 * FLOWS
    stripe_app.config["MOVEMENT_MAX_ATTEMPTS"] = MAX_ATTEMPTS
    monkeypatch.setattr(logging.getLogger("rq.worker"), "level", logging.WARNING)  # a line per job
    follow_emulator_clock(monkeypatch, emulator)
    start = emulator_now(emulator)
    worker = Worker(migrated, redis_url, emulator, tmp_path / "worker.log")
    worker.start()
    flows: list[Flow] = []
    began = time.monotonic()
    try:
        sellers = [onboarded_vendor(emulator) for _ in range(VENDORS)]
        settle(client, emulator, SUBSCRIBED)
        _arm_faults(emulator)
        shopper = None
        for index in range(FLOWS):
            if index % 20 == 0:
                shopper = auth.headers("shopper")  # within the checkout rate limit
            if index == FLOWS // 2:
                Redis.from_url(redis_url).flushdb()  # Redis restarts empty: every queued job is gone
            if index == (2 * FLOWS) // 3:
                worker.kill()  # mid-job, mid-lease
                worker.start()
            flows.append(_flow(rng, client, shopper, admin, emulator, sellers))
        tripped = _faults_tripped(emulator)
        timings = {"flows": time.monotonic() - began}
        _clear_faults(emulator)
        worker.stop()
        advance(emulator, 3)  # the platform's funds become available: retransfers after won disputes
        rounds = _finish(client, emulator)

        timings["finish"] = time.monotonic() - began - sum(timings.values())
        statuses = _nothing_twice_nothing_lost(emulator)
        _reconciles(client, admin, emulator, start)
        _vendors_hold_their_share(emulator, sellers)
        db.session.rollback()
        assert stripe_balance(emulator) == ledger.balance("platform:stripe_balance", "usd")

        timings["checks"] = time.monotonic() - began - sum(timings.values())
        # Payouts, under the same faults, then finished.
        _arm_faults(emulator, ("/v1/payouts",))
        advance(emulator, 10)  # past the hold
        run = payouts.run_now()
        assert run.status == "completed", run.last_error
        _clear_faults(emulator)
        _finish(client, emulator)
        advance(emulator, 2)  # the banks pay
        _finish(client, emulator)
        statuses = _nothing_twice_nothing_lost(emulator)
        paid_out = 0
        for seller in sellers:
            account = seller.stripe_account_id
            at_stripe = emu(emulator, "GET", "/v1/payouts", account=account, limit=100)["data"]
            local = db.session.scalars(select(Payout).where(Payout.vendor_id == seller.id,
                                                            Payout.dry_run.is_(False))).all()
            assert sorted(p["id"] for p in at_stripe) == sorted(p.stripe_payout_id for p in local
                                                                 if p.stripe_payout_id), (SEED, seller.id)
            paid_out += len(at_stripe)
            assert stripe_balance(emulator, account) == ledger.balance(f"vendor:{seller.id}:stripe_balance", "usd")
        assert stripe_balance(emulator) == ledger.balance("platform:stripe_balance", "usd")
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)
                                 .where(WebhookEvent.status == "failed")) == 0
        timings["payouts"] = time.monotonic() - began - sum(timings.values())
        run = _reconciles(client, admin, emulator, start)
        print({k: round(v, 1) for k, v in timings.items()})
        print(f"\nchaos seed {SEED}: {len(flows)} flows, {Counter(f.action for f in flows)}, "
              f"{tripped} faults tripped, finished in {rounds} rounds, movements {dict(statuses)}, "
              f"{paid_out} payouts, reconciliation matched {run['counts']['matched']}, "
              f"{time.monotonic() - began:.1f} s")
        assert tripped >= FLOWS // 5  # the faults did trip
    finally:
        worker.stop()
        _clear_faults(emulator)
