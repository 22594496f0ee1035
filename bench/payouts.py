"""Benchmark of a payout run's amounts: the service against the bare grouped query and a naive loop.

For 10^4, 10^5 and 10^6 ledger postings (half on vendors' `stripe_balance`, 1,000 vendors,
spread over 30 days), bulk-inserted with generate_series into a PostgreSQL database of its
own (created, then dropped), it times (best of 3 untraced calls; the naive loop: one) and
measures the peak Python memory of one more call under tracemalloc:
  service - marketplace.payouts.balances.amounts_due (what a run computes);
  limit   - the same single grouped SQL text on a bare connection, rows fetched;
  naive   - the ORM loop as naive code writes it: every vendor posting, its entry lazily
            loaded when touched, summed in Python (timed on at most 10^4 vendor postings,
            extrapolated linearly beyond);
  joined  - the same loop with the entries joined into its one query: a tuned loop, the
            stricter comparison (timed on at most 10^5 vendor postings, then extrapolated).
Prints one JSON line per size. BENCH_DATABASE_URL names the server (default local postgres).
Usage: /tmp/venv/bin/python bench/payouts.py [sizes...]
"""
import json
import os
import signal
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = f"bench_payouts_{os.getpid()}"
VENDORS = 1000
NAIVE_SAMPLE = 100_000
LIMIT_SQL = sa.text("""
    SELECT p.account, p.currency,
           SUM(CASE WHEN e.kind IN ('payout', 'payout_failure', 'payout_cancel') OR e.occurred_at < :cutoff
                    THEN p.amount ELSE 0 END),
           SUM(CASE WHEN e.kind IN ('payout', 'payout_failure', 'payout_cancel') OR e.occurred_at < :cutoff
                    THEN 0 ELSE p.amount END)
    FROM postings p JOIN journal_entries e ON e.id = p.entry_id
    WHERE p.account LIKE :pattern
    GROUP BY p.account, p.currency ORDER BY p.account, p.currency
""")


def measure(fn, repeat: int = 3):
    """(best seconds of `repeat` untraced calls, peak MiB of one traced call, result)."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return min(seconds), peak, result


def fill(engine, postings: int) -> None:
    """postings/2 entries of two postings each, by SQL only."""
    entries = postings // 2
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE postings, journal_entries"))
        conn.execute(sa.text("""
            INSERT INTO journal_entries (id, entry_key, kind, description, occurred_at, created_at)
            SELECT 'je_' || g, 'k' || g, 'vendor_payment', '', now() - (g % 30) * interval '1 day', now()
            FROM generate_series(1, :n) g"""), {"n": entries})
        conn.execute(sa.text("""
            INSERT INTO postings (id, entry_id, seq, account, currency, amount)
            SELECT 'pa_' || g, 'je_' || g, 0, 'vendor:ven_' || (g % :v) || :bal, 'usd', 1000 + g % 97
            FROM generate_series(1, :n) g
            UNION ALL
            SELECT 'pb_' || g, 'je_' || g, 1, 'vendor:ven_' || (g % :v) || :clr, 'usd', -(1000 + g % 97)
            FROM generate_series(1, :n) g"""),
            {"n": entries, "v": VENDORS, "bal": ":stripe_balance", "clr": ":transfer_clearing"})
        conn.execute(sa.text("ANALYZE postings; ANALYZE journal_entries"))


def naive(cutoff, limit=None, joined=False):
    """The loop a run must never be: every posting through the ORM, summed in Python.

    As naive code writes it, each posting's entry is loaded when first touched (the
    relationship's default lazy load: one SELECT per posting). With joined=True, the
    entries come in the same query (a tuned loop: the stricter comparison).
    """
    from marketplace.extensions import db
    from marketplace.ledger.models import Posting

    stmt = sa.select(Posting).where(Posting.account.like("vendor:%:stripe_balance")).order_by(Posting.id)
    if joined:
        stmt = stmt.options(sa.orm.joinedload(Posting.entry))
    totals: dict = {}
    for posting in db.session.scalars(stmt.limit(limit) if limit else stmt):
        key = (posting.account, posting.currency)
        settled = posting.entry.kind.startswith("payout") or posting.entry.occurred_at < cutoff
        available, pending = totals.get(key, (0, 0))
        totals[key] = (available + posting.amount, pending) if settled else (available, pending + posting.amount)
    db.session.rollback()
    db.session.expunge_all()
    return totals


def bench_size(app, postings: int) -> dict:
    from marketplace.extensions import db
    from marketplace.payouts import balances

    fill(db.engine, postings)
    cutoff = datetime.now(timezone.utc) - timedelta(days=7)
    balances.amounts_due(cutoff)  # warm PostgreSQL's cache once
    service_s, service_mb, dues = measure(lambda: balances.amounts_due(cutoff))
    db.session.rollback()
    with db.engine.connect() as conn:
        limit_s, limit_mb, rows = measure(lambda: conn.execute(LIMIT_SQL, {"cutoff": cutoff, "pattern": "vendor:%:stripe_balance"}).all())
    assert len(rows) == len(dues) and sum(int(r[2]) for r in rows) == sum(d.available for d in dues)
    vendor_rows = postings // 2
    loops = {}
    for name, joined, cap in (("naive", False, NAIVE_SAMPLE // 10), ("joined", True, NAIVE_SAMPLE)):
        sample = min(vendor_rows, cap)
        loop_s, loop_mb, totals = measure(lambda: naive(cutoff, None if sample == vendor_rows else sample, joined), 1)
        if sample == vendor_rows:
            assert sum(a for a, _ in totals.values()) == sum(d.available for d in dues)
        loops[name] = (loop_s * vendor_rows / sample, loop_mb, None if sample == vendor_rows else sample)
    naive_full, naive_mb, naive_sample = loops["naive"]
    joined_full, joined_mb, joined_sample = loops["joined"]
    return {
        "bench": "payout_amounts", "postings": postings, "vendors": len(dues),
        "service_s": round(service_s, 4), "service_peak_mib": round(service_mb, 2),
        "limit_grouped_sql_s": round(limit_s, 4), "limit_peak_mib": round(limit_mb, 2),
        "naive_orm_loop_s": round(naive_full, 3), "naive_peak_mib": round(naive_mb, 2),
        "naive_extrapolated_from_rows": naive_sample,
        "joined_orm_loop_s": round(joined_full, 3), "joined_peak_mib": round(joined_mb, 2),
        "joined_extrapolated_from_rows": joined_sample,
        "service_vs_limit": round(service_s / limit_s, 2), "naive_vs_service": round(naive_full / service_s, 1),
        "joined_vs_service": round(joined_full / service_s, 1),
        "within_2x_of_limit": service_s <= 2 * limit_s, "at_least_50x_faster_than_naive": naive_full >= 50 * service_s,
    }


def main(sizes: list[int]) -> None:
    signal.alarm(900)  # bounded: the whole benchmark stops by itself
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))
    try:
        from config import TestingConfig
        from marketplace import create_app
        from marketplace.extensions import db
        from marketplace.ledger.models import JournalEntry, Posting

        url = SERVER.rsplit("/", 1)[0] + f"/{DB_NAME}"
        app = create_app(TestingConfig({}), {"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": None})
        with app.app_context():
            db.metadata.create_all(db.engine, tables=[JournalEntry.__table__, Posting.__table__])
            for size in sizes:
                print(json.dumps(bench_size(app, size)), flush=True)
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [10**4, 10**5, 10**6])
