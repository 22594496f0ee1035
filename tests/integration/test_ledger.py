"""The posting service: balanced, idempotent, append-only."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.ledger.models import JournalEntry, Posting
from marketplace.ledger.service import ConflictingEntry, Line, UnbalancedEntry

BAL, FEES = ledger.platform("stripe_balance"), ledger.platform("stripe_fees")


def charge_lines(amount=1000, fee=59):
    return [Line(BAL, "usd", amount - fee), Line(FEES, "usd", fee), Line("shopper:clearing", "usd", -amount)]


def test_post_records_a_balanced_entry_and_balances_follow(app):
    ledger.post("charge", charge_lines(), key="charge:ch_1", stripe_object_id="ch_1")
    db.session.commit()
    assert ledger.balance(BAL, "usd") == 941
    assert ledger.balance(FEES, "usd") == 59
    assert ledger.balance(BAL, "eur") == 0
    assert ledger.unbalanced_entries() == []


def test_posting_twice_with_the_same_key_is_one_entry(app):
    first = ledger.post("charge", charge_lines(), key="charge:ch_1")
    second = ledger.post("charge", charge_lines(), key="charge:ch_1")
    db.session.commit()
    assert first.id == second.id
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)) == 1
    assert ledger.balance(BAL, "usd") == 941


def test_same_key_with_other_postings_is_refused(app):
    ledger.post("charge", charge_lines(), key="charge:ch_1")
    with pytest.raises(ConflictingEntry):
        ledger.post("charge", charge_lines(fee=60), key="charge:ch_1")


@pytest.mark.parametrize(
    "lines",
    [
        [Line(BAL, "usd", 100), Line(FEES, "usd", -99)],
        [Line(BAL, "usd", 100)],
        [Line(BAL, "usd", 100), Line(FEES, "eur", -100)],
        [Line(BAL, "usd", 0), Line(FEES, "usd", 0)],
        [Line(BAL, "usd", 1.5), Line(FEES, "usd", -1.5)],
        [Line(BAL, "USD", 1), Line(FEES, "USD", -1)],
    ],
    ids=["off-by-one", "single", "cross-currency", "zero", "float", "uppercase"],
)
def test_unbalanced_or_malformed_entries_are_refused(app, lines):
    with pytest.raises(UnbalancedEntry):
        ledger.post("charge", lines, key="bad")
    assert db.session.scalar(select(func.count()).select_from(Posting)) == 0


def test_entries_are_append_only(app):
    entry = ledger.post("charge", charge_lines(), key="charge:ch_1")
    db.session.commit()
    entry.postings[0].amount = 1
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.get(JournalEntry, entry.id))
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.commit()
    db.session.rollback()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 10**9), st.integers(0, 10**6)), min_size=1, max_size=5))
def test_balances_are_sums_of_postings(app, charges):
    start = ledger.balance(BAL, "usd")
    for i, (amount, fee) in enumerate(charges):
        fee = min(fee, amount - 1) if amount > 1 else 0
        lines = charge_lines(amount, fee) if fee else [Line(BAL, "usd", amount), Line("shopper:clearing", "usd", -amount)]
        ledger.post("charge", lines, key=f"charge:{i}")
    db.session.flush()
    expected = sum(amount - (min(fee, amount - 1) if amount > 1 else 0) for amount, fee in charges)
    assert ledger.balance(BAL, "usd") - start == expected
    assert ledger.unbalanced_entries() == []
    db.session.rollback()


def test_the_same_movement_recorded_concurrently_is_one_entry(app, pg_only):
    """A webhook job and a request racing to record one balance transaction: one entry, no error."""
    import threading

    barrier = threading.Barrier(4)
    errors, ids = [], []

    def record():
        with app.app_context():
            try:
                barrier.wait(5)
                ids.append(ledger.post("charge", charge_lines(), key="txn_race").id)
                db.session.commit()
            except Exception as exc:  # collected and asserted below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(set(ids)) == 1
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)) == 1
    assert ledger.balance(BAL, "usd") == 941
