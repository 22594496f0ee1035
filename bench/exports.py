"""Benchmark of the journal export: rows/s and memory while a client consumes the stream.

For each size N (postings), the ledger's own tables are seeded by COPY as bench/reconcile.py
seeds them: entries alternating a charge (3 postings) and a transfer (2), 10 entries a
second (so chunks end inside runs of equal occurred_at), every tenth with a description a
spreadsheet would take for a formula. Then GET /api/admin/exports/journal over the whole
window goes through the app's whole WSGI stack (the Flask test client, the bench holding no
app context: the request's contexts are popped and pushed again around the body, as under
a server) and the body is consumed piece by piece:
  plain  - wall time, rows/s, RSS growth sampled every 10 ms while consuming (--rounds times,
           alternating with the Python floor; medians);
  traced - tracemalloc's peak while consuming, every piece parsed back with csv: N rows,
           (occurred_at, entry, seq) strictly increasing (so each posting exactly once),
           debits equal to credits; nothing kept but running totals;
  floors - the same rows (no references looked up, values as stored) by the least a Python
           writer does here: one server-side cursor on a bare psycopg connection, csv.writer
           over each 2000 rows (`floor_python`); and PostgreSQL writing them as CSV itself
           (COPY ... TO STDOUT, read by psycopg: `floor_copy`), for scale.
Targets: memory flat (`memory_ok`): the traced peak at every size within MEMORY_FLAT x the
smallest size's, and RSS growth under RSS_GROWTH_MAX_MIB (10^5 rows held at once would pass
it); time (`time_ok`): the export within TIME_TARGET x the Python floor (`rows_per_s_target`
is that rate). One JSON line per size, then a summary and `memory_ok` when memory is flat at
every size; a size whose estimated time exceeds what is left of the budget is skipped, and
an alarm ends the run at the budget.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/mp_dev3 .venv/bin/python bench/exports.py \
        [--sizes 10000,100000] [--chunk 2000] [--budget 600]

BENCH_DATABASE_URL naming a server's `postgres` database (the default): a database of the
bench's own is created and dropped. Naming any other database: that one is the bench's
scratch database: migrated, its ledger tables emptied before each size and at the end (the
bench's admin user is kept, and found again by the next run).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import signal
import statistics
import sys
import threading
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import copy_ledger  # noqa: E402

import psycopg  # noqa: E402

BASE = 1_780_000_000  # occurred_at of the oldest entry
PER_SECOND = 10
MEMORY_FLAT = 1.5  # traced peak / the smallest size's
RSS_GROWTH_MAX_MIB = 32
TIME_TARGET = 3.0  # export_s / floor_python_s
LEDGER_TABLES = "journal_entries, postings"
ADMIN = ("bench-exports@example.com", "bench exports password")
# The same rows (no references looked up, amounts as stored) in the export's order.
ROWS_SQL = """
    SELECT e.id, e.occurred_at, e.kind, e.description, p.id, p.seq, p.account, p.currency, p.amount,
           e.local_type, e.local_id, e.stripe_object_id, e.stripe_balance_transaction_id, e.stripe_account
    FROM journal_entries e JOIN postings p ON p.entry_id = e.id
    ORDER BY e.occurred_at, e.id, p.seq
"""


def entries_for(postings: int) -> int:
    """Entries of 3 and 2 postings alternating, as many as make `postings` (the last may be short)."""
    pairs, rest = divmod(postings, 5)
    return 2 * pairs + (rest >= 3) + (rest >= 5)


def seed(url: str, n: int) -> tuple[int, float]:
    """At least n postings in the emptied ledger tables: (postings written, seconds)."""
    started = time.perf_counter()
    entries, postings = io.StringIO(), io.StringIO()
    written = 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {LEDGER_TABLES}")
        k = 0
        while written < n:
            written += _entry(entries, postings, k)
            k += 1
            if entries.tell() > 8_000_000:
                copy_ledger(conn, entries, postings)
        copy_ledger(conn, entries, postings)
        # As autovacuum leaves a real ledger: statistics and hint bits set.
        conn.execute("VACUUM (ANALYZE) journal_entries")
        conn.execute("VACUUM (ANALYZE) postings")
    return written, time.perf_counter() - started


def _entry(entries: io.StringIO, postings: io.StringIO, k: int) -> int:
    when = datetime.fromtimestamp(BASE + k // PER_SECOND, timezone.utc).isoformat()
    entry_id, txn, amount = f"je_{k:026d}", f"txn_{k:024d}", 1000 + k % 500
    description = "=formula" if k % 10 == 0 else f"Payment {k}"
    if k % 2 == 0:  # a charge: the platform's balance, Stripe's fee, the shopper's payment
        kind, source, local = "charge", f"ch_{k:024d}", ("order", f"ord_{k:026d}")
        lines = [("platform:stripe_balance", amount - 59), ("platform:stripe_fees", 59), ("shopper:clearing", -amount)]
    else:  # a transfer to a vendor
        kind, source, local = "transfer", f"tr_{k:024d}", ("order_split", f"spl_{k:026d}")
        lines = [("platform:stripe_balance", -amount), (f"vendor:ven_{k % 100:026d}:transfer_clearing", amount)]
    entries.write(f"{entry_id}\t{txn}\t{kind}\t{description}\t{when}\t{source}\t{txn}\t\\N\t{local[0]}\t{local[1]}"
                  f"\t{when}\n")
    for seq, (account, value) in enumerate(lines):
        postings.write(f"pst_{k:026d}{seq}\t{entry_id}\t{seq}\t{account}\tusd\t{value}\n")
    return len(lines)


def window(entries: int) -> dict:
    """The whole ledger of `entries` entries (as seed() wrote them) as the export's bounds."""
    last = entries - 1
    end = datetime.fromtimestamp(BASE + last // PER_SECOND + 1, timezone.utc)
    return {"from": datetime.fromtimestamp(BASE, timezone.utc).isoformat(), "to": end.isoformat()}


def stream(client, headers: dict, bounds: dict, on_piece) -> int:
    """GET the journal export and hand each piece to `on_piece`; returns the bytes read."""
    response = client.get("/api/admin/exports/journal", query_string=bounds, headers=headers)
    assert response.status_code == 200 and response.is_streamed, response.status_code
    size = 0
    try:
        for piece in response.response:
            size += len(piece)
            on_piece(piece)
    finally:
        response.close()
    return size


class Count:
    """The plain pass: rows counted by line ends (the bench's descriptions have none)."""

    def __init__(self):
        self.rows = -1  # the header

    def __call__(self, piece: bytes) -> None:
        self.rows += piece.count(b"\r\n")


class Check:
    """The traced pass: each piece parsed with csv; only running figures are kept."""

    def __init__(self):
        self.rows, self.last, self.debits, self.credits, self.pieces, self.guarded = 0, None, 0, 0, 0, 0
        self.header = None

    def __call__(self, piece: bytes) -> None:
        self.pieces += 1
        reader = csv.reader(io.StringIO(piece.decode("utf-8")))
        if self.header is None:
            self.header = next(reader)
        for row in reader:
            key = (int(datetime.fromisoformat(row[1]).timestamp()), row[0], int(row[5]))
            assert self.last is None or key > self.last, (self.last, key)
            self.last = key
            self.rows += 1
            self.debits += int(row[10])
            self.credits += int(row[11])
            self.guarded += row[3].startswith("'=")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn, traced: bool = False):
    """(result, seconds, peak MiB): tracemalloc's peak when traced, else the RSS growth sampled every 10 ms."""
    if traced:
        tracemalloc.start()
    base, peak, done = _rss(), [0], threading.Event()

    def sample():
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss() - base)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss() - base)
    if traced:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, elapsed, peak[0] / 2**20


def floor_python(url: str) -> tuple[int, float]:
    """(rows, seconds) of the least a Python writer of these rows does here: one server-side
    cursor on a bare psycopg connection, csv.writer over each 2000 rows fetched, values as they come."""
    started, rows, buffer = time.perf_counter(), 0, io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    with psycopg.connect(url) as conn, conn.cursor(name="floor") as cursor:
        cursor.execute(ROWS_SQL)
        while batch := cursor.fetchmany(2000):
            out.writerows(batch)
            rows += len(batch)
            buffer.seek(0)
            buffer.truncate()
    return rows, time.perf_counter() - started


def floor_copy(url: str) -> tuple[int, float]:
    """(bytes, seconds) of PostgreSQL writing the same rows as CSV itself, read by psycopg."""
    started, size = time.perf_counter(), 0
    with psycopg.connect(url) as conn, conn.cursor().copy(f"COPY ({ROWS_SQL}) TO STDOUT WITH (FORMAT csv)") as copy:
        for block in copy:
            size += len(block)
    return size, time.perf_counter() - started


def make_app(url: str, chunk: int):
    from config import TestingConfig
    from marketplace import create_app

    return create_app(TestingConfig({}), {
        "SQLALCHEMY_DATABASE_URI": url.replace("postgresql://", "postgresql+psycopg://", 1), "REDIS_URL": None,
        "STRIPE_SECRET_KEY": "sk_test_bench", "RATELIMIT_ENABLED": False, "EXPORT_CHUNK_SIZE": chunk})


def admin_headers(app) -> dict:
    from marketplace.auth import service
    from marketplace.auth.models import User
    from marketplace.extensions import db

    with app.app_context():
        if db.session.query(User).filter_by(email=ADMIN[0]).first() is None:
            service.create_user(*ADMIN, "admin")
        token = service.issue_token(*ADMIN).token
        db.session.remove()
    return {"Authorization": f"Bearer {token}"}


def bench_size(app, url: str, headers: dict, n: int, first_peak: float | None, rounds: int) -> dict:
    written, seed_s = seed(url, n)
    client, bounds = app.test_client(), window(entries_for(written))
    stream(client, headers, window(PER_SECOND), lambda piece: None)  # warm up: the first second
    plain, floors = [], []
    for _ in range(rounds):  # alternating, so other load on the machine skews both alike
        plain.append(timed(lambda: (counter := Count(), stream(client, headers, bounds, counter))[0]))
        floors.append(floor_python(url))
    check, _, traced_mib = timed(lambda: (checker := Check(), stream(client, headers, bounds, checker))[0], True)
    copy_bytes, copy_s = floor_copy(url)
    assert all(count.rows == written for count, _, _ in plain) and check.rows == written, (check.rows, written)
    assert all(rows == written for rows, _ in floors)
    assert check.debits == check.credits and check.guarded == 3 * -(-entries_for(written) // 10)
    export_s = statistics.median(seconds for _, seconds, _ in plain)
    floor_s = statistics.median(seconds for _, seconds in floors)
    rss_mib = max(mib for _, _, mib in plain)
    ratio = export_s / floor_s
    flat = round(traced_mib / first_peak, 2) if first_peak else 1.0
    return {
        "bench": "exports", "path": "GET /api/admin/exports/journal (Flask test client, streamed)",
        "postings": written, "entries": entries_for(written), "chunk_entries": app.config["EXPORT_CHUNK_SIZE"],
        "pieces": check.pieces, "seed_s": round(seed_s, 2), "rounds": rounds,
        "export_s": round(export_s, 3), "rows_per_s": round(written / export_s),
        "rows_per_s_target": round(written / floor_s / TIME_TARGET),
        "floor_python_s": round(floor_s, 3), "floor_python_rows_per_s": round(written / floor_s),
        "time_vs_floor_python": round(ratio, 2), "time_target": TIME_TARGET, "time_ok": ratio <= TIME_TARGET,
        "floor_copy_csv_s": round(copy_s, 3), "floor_copy_rows_per_s": round(written / copy_s),
        "peak_rss_growth_mib": round(rss_mib, 1), "traced_peak_mib": round(traced_mib, 2),
        "traced_peak_vs_smallest": flat,
        "memory_target": {"traced_peak_vs_smallest_max": MEMORY_FLAT, "rss_growth_max_mib": RSS_GROWTH_MAX_MIB},
        "memory_ok": rss_mib <= RSS_GROWTH_MAX_MIB and flat <= MEMORY_FLAT,
        "checked": {"rows": check.rows, "each_once_in_order": True, "debits_equal_credits": True,
                    "formula_cells_guarded": check.guarded},
    }


def scratch(url: str):
    """(the database the bench works in, whether the bench made it): its own beside `postgres`, else `url`'s."""
    server, name = url.rsplit("/", 1)
    if name != "postgres":
        return url, False
    own = f"bench_exports_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {own}")
    return f"{server}/{own}", True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="postings, comma-separated; the first is the base")
    parser.add_argument("--chunk", type=int, default=2000, help="journal entries a query (EXPORT_CHUNK_SIZE)")
    parser.add_argument("--rounds", type=int, default=3, help="export and Python floor, alternating (medians)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds; the run stops by itself")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url, own = scratch(server)
    deadline = time.monotonic() + args.budget
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("budget exceeded")))
    signal.alarm(int(args.budget) + 1)
    app = None
    try:
        app = make_app(url, args.chunk)
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
        headers, first_peak, per_posting, results = admin_headers(app), None, None, []
        for n in (int(s) for s in args.sizes.split(",")):
            left = deadline - time.monotonic()
            if per_posting is not None and (expected := 1.5 * n * per_posting) > left:
                print(json.dumps({"bench": "exports", "postings": n, "skipped": "estimated time exceeds the budget",
                                  "estimated_s": round(expected), "left_s": round(left)}))
                continue
            started = time.monotonic()
            line = bench_size(app, url, headers, n, first_peak, args.rounds)
            per_posting = (time.monotonic() - started) / n
            first_peak = first_peak or line["traced_peak_mib"]
            results.append(line)
            print(json.dumps(line), flush=True)
        print(json.dumps({"bench": "exports", "summary": True, "sizes": [r["postings"] for r in results],
                          "traced_peak_mib": [r["traced_peak_mib"] for r in results],
                          "rows_per_s": [r["rows_per_s"] for r in results],
                          "time_vs_floor_python": [r["time_vs_floor_python"] for r in results],
                          "memory_ok": all(r["memory_ok"] for r in results),
                          "time_ok": all(r["time_ok"] for r in results)}))
        if all(r["memory_ok"] for r in results):
            print("memory_ok")
    finally:
        signal.alarm(0)
        if app is not None:
            from marketplace.extensions import db

            with app.app_context():
                db.engine.dispose()
        if own:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"TRUNCATE {LEDGER_TABLES}")


if __name__ == "__main__":
    main()
