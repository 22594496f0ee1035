"""Two payout runs at once (PostgreSQL advisory lock), and a payout whose answer was lost."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import stripe_gateway
from marketplace.database import utcnow
from marketplace.errors import ServiceUnavailable
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.models import Movement
from marketplace.payouts import service
from tests.payouts_helpers import (
    assert_paid_once, follow_emulator_clock, ledger_balance, payouts_of, stripe_payouts, three_sellers,
)

pytestmark = pytest.mark.needs("emulator")


@pytest.fixture(autouse=True)
def _emulator_clock(monkeypatch, emulator):
    follow_emulator_clock(monkeypatch, emulator)


@pytest.fixture
def sellers(client, auth, emulator):
    return three_sellers(client, auth, emulator)



def test_two_concurrent_runs_never_pay_a_vendor_twice(app, emulator, sellers, pg_only, monkeypatch):
    rows, owed = sellers
    inside = threading.Barrier(2)
    real = stripe_gateway.retrieve_balance

    def slow_balance(account):
        try:
            inside.wait(timeout=2)  # both runs are past their start before either pays
        except threading.BrokenBarrierError:
            pass
        return real(account)

    monkeypatch.setattr(stripe_gateway, "retrieve_balance", slow_balance)
    results = []

    def run():
        with app.app_context():
            run = service.run_now()
            results.append((run.status, run.error, run.payouts_created))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [("completed", None, 3), ("failed", "another payout run is in progress", 0)]
    assert_paid_once(emulator, rows, owed)


def test_a_payout_whose_answer_was_lost_is_finished_by_the_sweep_never_paid_twice(app, emulator, sellers,
                                                                                 monkeypatch):
    rows, owed = sellers
    real, calls, lost, counting = stripe_gateway.create_payout, [], [], threading.Lock()

    def answer_lost_for_the_second_payout(*args, **kwargs):
        with counting:  # the run pays several vendors at once
            calls.append(args)
            second = len(calls) == 2
        created = real(*args, **kwargs)
        if second:
            lost.append(args[3])
            raise ServiceUnavailable("The payment provider could not be reached.", code="stripe_unavailable")
        return created

    monkeypatch.setattr(stripe_gateway, "create_payout", answer_lost_for_the_second_payout)
    first = service.run_now()
    assert first.status == "completed" and first.payouts_created == 3  # the others were not held up
    unknown = db.session.scalar(select(Movement).where(Movement.status == "unknown"))
    assert unknown.kind == "payout" and "stripe_unavailable" in unknown.last_error
    assert service.run_now().payouts_created == 0  # in flight: never owed twice
    unknown.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert engine.sweep() == 1
    assert len(calls) == 3  # looked up and found at Stripe: not sent again
    assert lost == [f"payout-{unknown.id}"]
    assert db.session.get(Movement, unknown.id).status == "succeeded"
    assert service.run_now().payouts_created == 0
    assert_paid_once(emulator, rows, owed)
