"""A payout run fanned out: shards of vendors paid by every worker side by side, a killed
worker's shard taken over, one run at a time until every shard has ended, Stripe's rate
limit kept by every process together. Through the emulator on PostgreSQL."""
import time
from datetime import timedelta

import pytest
import requests
from rq import SimpleWorker
from sqlalchemy import func, select, update

from marketplace import outbox, queue
from marketplace.database import utcnow
from marketplace.errors import Conflict
from marketplace.extensions import db
from marketplace.payouts import runs, service
from marketplace.payouts.models import Payout, PayoutRun, PayoutRunShard
from tests.payouts_helpers import (
    assert_paid_once, follow_emulator_clock, ledger_balance, stripe_payouts, three_sellers,
)

pytestmark = [pytest.mark.needs("emulator"), pytest.mark.settings(PAYOUT_SHARD_SIZE=1)]


@pytest.fixture(autouse=True)
def _emulator_clock(monkeypatch, emulator):
    follow_emulator_clock(monkeypatch, emulator)


@pytest.fixture
def sellers(client, auth, emulator):
    return three_sellers(client, auth, emulator)



def planned(monkeypatch) -> PayoutRun:
    """A run planned (its shards committed, the run `running`) that nobody has worked yet."""
    monkeypatch.setattr(runs, "work", lambda run_id, progress=None, until_ended=True: db.session.get(PayoutRun, run_id))
    run = service.run_now()
    monkeypatch.undo()
    return run


def shards(run_id: str) -> list[PayoutRunShard]:
    db.session.rollback()
    return list(db.session.scalars(select(PayoutRunShard).where(PayoutRunShard.run_id == run_id)
                                   .order_by(PayoutRunShard.position)))


def test_a_run_is_cut_into_shards_that_each_pay_their_vendors(app, emulator, sellers, monkeypatch):
    rows, owed = sellers
    run = planned(monkeypatch)
    assert (run.status, run.vendors_total, run.shards_total, run.shards_done) == ("running", 3, 3, 0)
    first, *others = shards(run.id)
    assert runs.run_shard(first.id) == "done"  # one worker's job
    assert runs.run_shard(first.id) == "done"  # delivered again: nothing more
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Payout)) == 1
    run = runs.work(run.id)  # the others, by whoever waits for the run
    assert (run.status, run.payouts_created, run.total_amount) == ("completed", 3, sum(owed.values()))
    assert run.progress == {"vendors": 3, "shards": 3, "shards_done": 3}
    assert [s.status for s in shards(run.id)] == ["done"] * 3
    assert_paid_once(emulator, rows, owed)


def test_while_a_shard_is_open_no_other_run_starts(app, client, auth, emulator, sellers, monkeypatch):
    rows, owed = sellers
    run = planned(monkeypatch)  # the run lock is released once the shards are planned
    other = PayoutRun(status="queued", dry_run=False)
    db.session.add(other)
    db.session.commit()
    assert runs.execute(other.id).error == runs.LOCKED
    with pytest.raises(Conflict):
        service.create_run()
    busy = client.post("/api/admin/payout-runs", json={}, headers=auth.headers("admin"))
    assert busy.status_code == 409 and busy.get_json()["error"]["code"] == "payout_run_in_progress"
    assert runs.work(run.id).status == "completed"
    after = service.run_now()  # a new run: nothing owed any more, it pays nobody
    assert (after.id != run.id, after.status, after.payouts_created) == (True, "completed", 0)
    assert_paid_once(emulator, rows, owed)


def test_a_killed_workers_shard_is_taken_over_and_no_vendor_is_paid_twice(app, emulator, sellers, monkeypatch):
    rows, owed = sellers
    run = planned(monkeypatch)
    dead = shards(run.id)[0]
    # A worker claimed the shard, paid its vendor, and was killed before it could say so.
    assert runs._claim(shard_id=dead.id) == dead.id
    run_row = db.session.get(PayoutRun, run.id)
    runs._pay_one(run.id, False, run_row.cutoff, dead.dues[0])
    db.session.rollback()
    assert runs.resume_shards() == 0  # its lease has not run out yet
    assert runs._claim(shard_id=dead.id) is None  # nobody else takes it meanwhile
    db.session.execute(update(PayoutRunShard).where(PayoutRunShard.id == dead.id)
                       .values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    run = runs.work(run.id)
    assert (run.status, run.payouts_created) == ("completed", 3)
    taken_over = db.session.get(PayoutRunShard, dead.id)
    assert (taken_over.status, taken_over.attempts, taken_over.payouts_created) == ("done", 2, 1)
    assert_paid_once(emulator, rows, owed)


def test_two_holders_of_one_shard_cannot_both_pay_a_vendor(app, emulator, sellers, monkeypatch):
    rows, owed = sellers
    run = planned(monkeypatch)
    item = shards(run.id)[0].dues[0]
    cutoff = db.session.get(PayoutRun, run.id).cutoff
    db.session.rollback()
    runs._pay_one(run.id, False, cutoff, item)
    runs._pay_one(run.id, False, cutoff, item)  # a holder whose lease ran out while it was alive
    seller = next(s for s in rows if s.id == item[0])
    assert [p["amount"] for p in stripe_payouts(emulator, seller)] == [owed[seller.id]]
    assert db.session.scalar(select(func.count()).select_from(Payout).where(Payout.vendor_id == seller.id)) == 1


@pytest.mark.needs("emulator", "redis")
def test_the_shards_go_to_the_workers_and_a_silent_ones_come_back(redis_app, emulator, sellers, monkeypatch):
    rows, _ = sellers
    drain()  # the sales' events, processed by a worker
    owed = {seller.id: ledger_balance(seller) for seller in rows}
    run = planned(monkeypatch)
    assert queue.get_queue().count == 3  # a job per shard, handed over at once
    for shard in shards(run.id):  # every worker that took one was killed before working it
        assert runs._claim(shard_id=shard.id) == shard.id
    queue.get_queue().empty()
    db.session.execute(update(PayoutRunShard).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert runs.resume_shards() == 3  # the sweep asks for each again
    drain()
    db.session.rollback()
    run = db.session.get(PayoutRun, run.id)
    assert (run.status, run.payouts_created, run.shards_done) == ("completed", 3, 3)
    assert_paid_once(emulator, rows, owed)


def drain() -> None:
    outbox.relay()
    SimpleWorker([queue.get_queue()], connection=queue.get_redis()).work(burst=True)


def _limit_stripe(emulator, **limits) -> None:
    requests.post(f"{emulator.url}/_emulator/limits", json=limits, timeout=10).raise_for_status()


def _rate_limited(emulator) -> int:
    return requests.get(f"{emulator.url}/_emulator/requests", timeout=10).json()["rate_limited"]


def test_every_process_paces_its_stripe_calls_below_the_rate_limit(app, emulator, sellers):
    rows, owed = sellers
    app.config.update(STRIPE_READS_PER_SECOND=2, STRIPE_WRITES_PER_SECOND=2)
    app.extensions.pop("stripe_client", None)  # built again, paced
    requests.delete(f"{emulator.url}/_emulator/requests", timeout=10).raise_for_status()
    # Stripe's limit a little above the pace, as the settings advise: a request is counted
    # here when it leaves, at Stripe when it arrives. No Stripe-Should-Retry on its 429s.
    _limit_stripe(emulator, read_per_second=3, write_per_second=3)
    started = time.monotonic()
    run = service.run_now()
    assert (run.status, run.payouts_created) == ("completed", 3)
    assert _rate_limited(emulator) == 0  # never refused: every call waited for its place
    assert time.monotonic() - started >= 0.9  # three reads and three writes at two a second
    _limit_stripe(emulator, read_per_second=0, write_per_second=0)
    assert_paid_once(emulator, rows, owed)


def test_a_call_stripe_refuses_for_the_rate_is_asked_again(app, emulator, sellers):
    rows, owed = sellers
    requests.delete(f"{emulator.url}/_emulator/requests", timeout=10).raise_for_status()
    _limit_stripe(emulator, read_per_second=1, write_per_second=1)  # unpaced: Stripe refuses some
    run = service.run_now()
    assert (run.status, run.payouts_created) == ("completed", 3)
    assert _rate_limited(emulator) > 0
    _limit_stripe(emulator, read_per_second=0, write_per_second=0)
    assert_paid_once(emulator, rows, owed)


@pytest.mark.parametrize("sent", [False, True])
def test_a_payout_whose_worker_died_around_its_call_is_finished_by_the_sweep_once(app, emulator, sellers,
                                                                                  monkeypatch, sent):
    """The payout row and its claimed movement commit before the call. A worker killed before
    the call, or after Stripe made the payout but before it was recorded, leaves the movement
    `sent`: once its lease runs out the sweep looks for the payout at Stripe, and sends it
    only if it is not there."""
    from marketplace import stripe_gateway
    from marketplace.movements import engine
    from marketplace.movements.models import Movement

    rows, owed = sellers
    run = planned(monkeypatch)
    item = shards(run.id)[0].dues[0]
    cutoff = db.session.get(PayoutRun, run.id).cutoff
    db.session.rollback()
    movement = runs._create_row(run.id, False, item[0], item[1], item[3], item[2], None, cutoff)
    if sent:  # Stripe made it; the answer died with the worker
        runs.send_payout(movement)
    db.session.execute(update(Movement).where(Movement.id == movement.id)
                       .values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    calls = []
    real = stripe_gateway.create_payout
    monkeypatch.setattr(stripe_gateway, "create_payout", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert engine.sweep() == 1
    assert db.session.get(Movement, movement.id).status == "succeeded"
    assert len(calls) == (0 if sent else 1)
    seller = next(s for s in rows if s.id == item[0])
    assert [p["amount"] for p in stripe_payouts(emulator, seller)] == [owed[seller.id]]
    assert ledger_balance(seller) == 0


def test_a_live_holder_keeps_its_shard_while_a_call_outlasts_the_lease(app, emulator, sellers, monkeypatch,
                                                                       pg_only):
    """The lease is renewed by a thread of its own: a holder waiting on a slow Stripe call is
    not taken for dead (only a killed one is)."""
    import threading

    from marketplace import stripe_gateway

    rows, owed = sellers
    run = planned(monkeypatch)
    shard = shards(run.id)[0]
    monkeypatch.setattr(runs, "SHARD_LEASE", timedelta(seconds=0.4))
    real, entered = stripe_gateway.retrieve_balance, threading.Event()

    def slow_balance(account):
        entered.set()
        time.sleep(1.5)  # well past the lease
        return real(account)

    monkeypatch.setattr(stripe_gateway, "retrieve_balance", slow_balance)

    def holder():
        with app.app_context():
            runs.run_shard(shard.id)
            db.session.remove()

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(10)
    time.sleep(0.9)
    assert runs._claim(shard_id=shard.id) is None  # still held
    thread.join(20)
    db.session.rollback()
    assert db.session.get(PayoutRunShard, shard.id).status == "done"
    assert runs.work(run.id).status == "completed"
    assert_paid_once(emulator, rows, owed)


def test_a_second_delivery_of_a_runs_job_never_marks_a_paying_run_failed(app, emulator, sellers, monkeypatch):
    rows, owed = sellers
    run = planned(monkeypatch)
    assert runs._refuse(run.id).status == "running"  # refused only while still queued
    second = PayoutRun(status="queued", dry_run=False)
    db.session.add(second)
    db.session.commit()
    assert runs.execute(second.id).error == runs.LOCKED  # the shards of the first are open
    assert db.session.get(PayoutRun, run.id).status == "running"
    assert runs.work(run.id).status == "completed"
    assert_paid_once(emulator, rows, owed)


def test_an_interrupted_attempt_gives_its_shard_back_at_once(app, emulator, sellers, monkeypatch):
    """A job's timeout (or any signal) raised while a shard is worked: the heartbeat stops
    with it and the shard is queued again, never held by a lease renewed forever."""
    import threading

    class JobTimeout(BaseException):
        pass

    rows, owed = sellers
    run = planned(monkeypatch)
    shard = shards(run.id)[0]

    def interrupted(*args, **kwargs):
        raise JobTimeout()

    monkeypatch.setattr(runs, "wait", interrupted)
    with pytest.raises(JobTimeout):
        runs.run_shard(shard.id)
    monkeypatch.undo()
    assert not [t for t in threading.enumerate() if t.name == "payout-shard-lease"]
    back = shards(run.id)[0]
    assert (back.status, back.error, back.locked_until) == ("queued", "interrupted: JobTimeout", None)
    assert runs.work(run.id).status == "completed"
    assert_paid_once(emulator, rows, owed)


def test_running_the_payouts_again_resumes_a_run_nobody_finished(app, emulator, sellers, monkeypatch):
    rows, owed = sellers
    run = planned(monkeypatch)  # its process was killed; no worker took its shards
    resumed = service.run_now()
    assert (resumed.id, resumed.status, resumed.payouts_created) == (run.id, "completed", 3)
    assert_paid_once(emulator, rows, owed)


def test_a_holder_whose_shard_was_taken_over_pays_nobody_more(app, emulator, sellers, monkeypatch):
    rows, owed = sellers
    run = planned(monkeypatch)
    shard = shards(run.id)[0]
    assert runs._claim(shard_id=shard.id) == shard.id  # attempt 1, then thought dead
    db.session.execute(update(PayoutRunShard).where(PayoutRunShard.id == shard.id)
                       .values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert runs._claim(shard_id=shard.id) == shard.id  # attempt 2 holds it now
    cutoff = db.session.get(PayoutRun, run.id).cutoff
    db.session.rollback()
    runs._pay_one(run.id, False, cutoff, shard.dues[0], shard.id, 1)  # the old holder, still alive
    assert db.session.scalar(select(func.count()).select_from(Payout)) == 0


@pytest.mark.settings(PAYOUT_SHARD_SIZE=10)
def test_a_vendor_stripe_refuses_is_skipped_and_the_others_are_paid(app, emulator, sellers, monkeypatch):
    from marketplace import stripe_gateway

    rows, owed = sellers
    refused = rows[1].stripe_account_id
    real = stripe_gateway.retrieve_balance

    def balance(account):
        if account == refused:
            raise stripe_gateway.StripeFailure("The provided key does not have access to account.",
                                               details={"stripe_code": "account_invalid"})
        return real(account)

    monkeypatch.setattr(stripe_gateway, "retrieve_balance", balance)
    run = service.run_now()
    assert (run.status, run.payouts_created, run.shards_total) == ("completed", 2, 1)
    assert stripe_payouts(emulator, rows[1]) == []
    assert_paid_once(emulator, [rows[0], rows[2]], owed)


def test_a_payout_lookup_stripe_refuses_leaves_the_outcome_unknown(app, emulator, sellers, monkeypatch):
    """Before sending again, a payout whose answer was lost is looked for; a lookup Stripe
    refuses says nothing of the first send, so the payout is never marked failed for it (it
    would then be owed, and paid, again)."""
    from marketplace import stripe_gateway
    from marketplace.movements import engine
    from marketplace.movements.models import Movement

    rows, owed = sellers
    run = planned(monkeypatch)
    item = shards(run.id)[0].dues[0]
    cutoff = db.session.get(PayoutRun, run.id).cutoff
    db.session.rollback()
    movement = runs._create_row(run.id, False, item[0], item[1], item[3], item[2], None, cutoff)
    runs.send_payout(movement)  # made; the answer was lost
    db.session.execute(update(Movement).where(Movement.id == movement.id)
                       .values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    def refused(*args, **kwargs):
        raise stripe_gateway.StripeFailure("Invalid request.", details={"stripe_code": "parameter_invalid"})

    monkeypatch.setattr(stripe_gateway, "list_payouts", refused)
    assert engine.drive(movement.id) == "unknown"
    assert db.session.get(Payout, db.session.get(Movement, movement.id).payout_id).status == "pending"
    monkeypatch.undo()
    follow_emulator_clock(monkeypatch, emulator)
    db.session.execute(update(Movement).where(Movement.id == movement.id).values(next_attempt_at=utcnow()))
    db.session.commit()
    assert engine.drive(movement.id) == "succeeded"
    seller = next(s for s in rows if s.id == item[0])
    assert [p["amount"] for p in stripe_payouts(emulator, seller)] == [owed[seller.id]]
