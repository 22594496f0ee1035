"""The ledger side of reconciliation read in keyset chunks: every entry once, newest first."""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from marketplace.ledger import service as ledger
from marketplace.extensions import db
from marketplace.ledger.service import Line
from marketplace.reconciliation import journal

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _post(n: int, at: datetime, account: str | None) -> None:
    lines = [Line("platform:stripe_balance", "usd", 1000 + n), Line("platform:stripe_fees", "usd", 30),
             Line("shopper:clearing", "usd", -(1030 + n))]
    ledger.post("charge", lines, key=f"k{n}-{account}", occurred_at=at, stripe_object_id=f"ch_{n}",
                stripe_balance_transaction_id=f"txn_{n}_{account}", stripe_account=account)


def test_chunks_cross_ties_and_keep_to_the_account_and_window(app, monkeypatch):
    # 11 entries, several sharing a timestamp across chunk edges; others outside the window or account.
    for n in range(11):
        _post(n, T0 + timedelta(seconds=n // 3), None)
    _post(98, T0 + timedelta(hours=2), None)  # after the window
    _post(99, T0 + timedelta(seconds=1), "acct_other")
    db.session.commit()
    window = (T0, T0 + timedelta(hours=1))
    whole = list(journal.entries_in_window(None, *window))
    monkeypatch.setattr(journal, "CHUNK", 2)
    chunked = list(journal.entries_in_window(None, *window))

    assert chunked == whole and len(whole) == 11
    assert {row.bt_id for row in chunked} == {f"txn_{n}_None" for n in range(11)}
    keys = [(row.occurred, row.entry_id) for row in chunked]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id
    first = next(row for row in chunked if row.bt_id == "txn_4_None")
    assert (first.amount, first.fee, first.currency) == (1004 + 30, 30, "usd")  # amount = net + fee


def test_each_chunk_is_one_query_whose_index_scan_starts_at_the_last_chunk(app, pg_only, monkeypatch):
    # An unbounded keyset (the OR alone) walks past every earlier chunk: quadratic in the window.
    for n in range(9):
        _post(n, T0 + timedelta(seconds=n // 2), None)
    db.session.commit()
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "journal_entries" in statement:
            statements.append((statement, parameters))

    monkeypatch.setattr(journal, "CHUNK", 2)
    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert len(list(journal.entries_in_window(None, T0, T0 + timedelta(hours=1)))) == 9
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    assert len(statements) == 5  # chunks of 2, 2, 2, 2, 1

    statement, parameters = statements[-1]
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # the few rows here would be read whole
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    bounds = [line for line in plan.splitlines() if "Index Cond" in line and "occurred_at <=" in line]
    assert bounds and "Hash" not in plan, plan  # postings looked up per entry, never hashed whole
