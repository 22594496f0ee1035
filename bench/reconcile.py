"""Benchmark of reconciliation: wall time and peak memory against merely reading the same pages.

For each size N it seeds its own PostgreSQL database with a ledger of N balance-transaction
entries (plus a few planted discrepancies), then, through the real `stripe` package and
`stripe_gateway.iter_balance_transactions`, (1) merely reads the N transactions and (2) runs
a reconciliation of the window (`reconciliation.service.run_now`). The pages come from a
local fake pager: a `stripe.HTTPClient` that renders `GET /v1/balance_transactions` pages
(100 per page, newest first, `created` filters, `starting_after` cursors) as JSON on the fly,
so 10^6 transactions need neither an emulator holding them nor network time. Its rendering
cost is in both measurements. Peak memory: RSS growth during each phase, sampled every 10 ms
(reconciliation runs first, so reading cannot reuse arenas it grew), and, up to
--traced-max, tracemalloc's peak in a second pass.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/reconcile.py \
        [--sizes 10000,100000,1000000] [--budget 1200] [--traced-max 100000]

One JSON line per size, each figure beside its floor (merely reading the pages) and each
target with whether it is met: reconcile within TIME_TARGET x of reading (`time_ok`), and
peak memory flat as N grows (`memory_ok`: the traced peak within MEMORY_FLAT x the smallest
size's, and RSS growth under RSS_GROWTH_MAX_MIB, which holding the window would pass from
10^5 on). The run stops by itself: a size whose estimated time (from the previous size's
per-item times, phase by phase) exceeds what is left of the budget is skipped, and an alarm
ends the run at the budget. Its database is created and dropped.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import copy_ledger  # noqa: E402

import psycopg  # noqa: E402
import stripe  # noqa: E402

BASE = 1_780_000_000  # created of the oldest transaction
PER_SECOND = 10
PLANTED = 5  # of each discrepancy kind
TIME_TARGET = 1.3  # reconcile_s / read_s
MEMORY_FLAT = 1.25  # reconcile's traced peak / the smallest size's
RSS_GROWTH_MAX_MIB = 32


def created_of(k: int) -> int:
    return BASE + k // PER_SECOND


def bt_of(k: int) -> dict:
    """Transaction k (0 = oldest): even ones are charges with a fee, odd ones transfers."""
    if k % 2 == 0:
        amount, fee, source, type_ = 1000 + k % 500, 59, f"ch_{k:09d}", "charge"
    else:
        amount, fee, source, type_ = -(500 + k % 300), 0, f"tr_{k:09d}", "transfer"
    created = created_of(k)
    return {"id": f"txn_{k:09d}", "object": "balance_transaction", "amount": amount, "available_on": created,
            "created": created, "currency": "usd", "description": None, "exchange_rate": None,
            "fee": fee, "fee_details": [{"amount": fee, "currency": "usd", "description": "Stripe processing fees",
                                         "type": "stripe_fee", "application": None}] if fee else [],
            "net": amount - fee, "reporting_category": type_, "source": source, "status": "available",
            "type": type_}


class FakePager(stripe.HTTPClient):
    """Serves N balance transactions as Stripe would list them; nothing else exists."""

    name = "fake_pager"

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        match = re.fullmatch(r"/v1/balance_transactions(?:/([^/]+))?", parts.path)
        if method != "get" or match is None:
            return self._answer(404, {"error": {"type": "invalid_request_error", "message": "not here"}})
        if match.group(1):
            return self._answer(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                                "message": "No such balance transaction"}})
        return self._answer(200, self._page({k: v[0] for k, v in parse_qs(parts.query).items()}))

    def _page(self, q: dict) -> dict:
        lo = max(0, (int(q["created[gte]"]) - BASE) * PER_SECOND) if "created[gte]" in q else 0
        hi = min(self.n, (int(q["created[lt]"]) - BASE) * PER_SECOND) if "created[lt]" in q else self.n
        top = int(q["starting_after"][4:]) if "starting_after" in q else hi
        limit = int(q.get("limit", 10))
        ks = range(top - 1, max(lo, top - limit) - 1, -1)
        data = [bt_of(k) for k in ks]
        return {"object": "list", "data": data, "has_more": bool(data) and ks[-1] > lo,
                "url": "/v1/balance_transactions"}

    @staticmethod
    def _answer(status: int, body: dict):
        return json.dumps(body).encode(), status, {"Request-Id": "req_fake"}

    def close(self):
        pass


def seed(url: str, n: int) -> float:
    """A ledger of n entries mirroring the pager, with PLANTED missing, phantom and altered entries."""
    started = time.perf_counter()
    missing = {7 + 97 * j for j in range(PLANTED)}
    altered = {11 + 89 * j for j in range(PLANTED)}
    entries, postings = io.StringIO(), io.StringIO()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE journal_entries, postings, reconciliation_discrepancies, "
                      "reconciliation_accounts, reconciliation_runs CASCADE")
        for k in range(n):
            if k in missing:
                continue
            bt = bt_of(k)
            _entry(entries, postings, f"je_{k:09d}", bt, 100 if k in altered else 0)
            if entries.tell() > 8_000_000:
                copy_ledger(conn, entries, postings)
        for j in range(PLANTED):  # recorded here, never moved on Stripe
            ghost = {**bt_of(2 * (13 + 71 * j)), "id": f"txn_ghost_{j}", "source": f"ch_ghost_{j}"}
            _entry(entries, postings, f"je_ghost_{j}", ghost, 0)
        copy_ledger(conn, entries, postings)
        # As autovacuum leaves a real ledger: statistics, and hint bits set (else the first
        # query to read the fresh rows, the measured reconciliation, writes every page).
        conn.execute("VACUUM (ANALYZE) journal_entries")
        conn.execute("VACUUM (ANALYZE) postings")
    return time.perf_counter() - started


def _entry(entries, postings, entry_id: str, bt: dict, extra: int) -> None:
    when = datetime.fromtimestamp(bt["created"], timezone.utc).isoformat()
    amount, fee = bt["amount"] + extra, bt["fee"]
    entries.write(f"{entry_id}\t{bt['id']}\t{bt['type']}\t\t{when}\t{bt['source']}\t{bt['id']}\t\\N\t\\N\t\\N\t{when}\n")
    lines = [("platform:stripe_balance", amount - fee)]
    if fee:
        lines.append(("platform:stripe_fees", fee))
    lines.append(("shopper:clearing" if bt["type"] == "charge" else "vendor:ven_1:transfer_clearing", -amount))
    for seq, (account, value) in enumerate(lines):
        postings.write(f"p{entry_id[3:]}_{seq}\t{entry_id}\t{seq}\t{account}\tusd\t{value}\n")


def read_all(n: int) -> int:
    """Merely read the window's pages, as reconciliation does."""
    from marketplace import stripe_gateway

    return sum(1 for _ in stripe_gateway.iter_balance_transactions(None, BASE, created_of(n - 1) + 1))


def reconcile(n: int) -> dict:
    from marketplace.reconciliation import service

    start, end = (datetime.fromtimestamp(t, timezone.utc) for t in (BASE, created_of(n - 1) + 1))
    run = service.run_now(start, end)
    return {"status": run.status, "transactions": run.transactions_checked, **run.counts}


def warm_up() -> None:
    """A reconciliation and a read of the window's first second, unmeasured: reconciliation runs
    first, and would otherwise pay alone the process's one-time costs (lazy imports in stripe,
    SQLAlchemy's statement compilation), which at 10^4 are a tenth of its time."""
    from marketplace import stripe_gateway
    from marketplace.reconciliation import service

    service.run_now(*(datetime.fromtimestamp(t, timezone.utc) for t in (BASE, BASE + 1)))
    sum(1 for _ in stripe_gateway.iter_balance_transactions(None, BASE, BASE + 1))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn, n: int, traced: bool = False):
    """(result, seconds, peak MiB, CPU seconds of this process): the peak is tracemalloc's when
    traced, else the RSS growth sampled every 10 ms."""
    if traced:
        tracemalloc.start()
    base, peak, done = _rss(), [0], threading.Event()

    def sample():
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss() - base)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started, cpu = time.perf_counter(), time.process_time()
    result = fn(n)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss() - base)
    if traced:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, elapsed, peak[0] / 2**20, cpu


def make_app(url: str):
    from config import TestingConfig
    from marketplace import create_app

    app = create_app(TestingConfig({}), {"SQLALCHEMY_DATABASE_URI": url.replace("postgresql://", "postgresql+psycopg://", 1),
                                         "REDIS_URL": None, "STRIPE_SECRET_KEY": "sk_test_bench"})
    return app


def bench_size(app, url: str, n: int, first_peak: float | None, traced_max: int) -> tuple[dict, dict]:
    """The size's JSON line, and its phases' seconds per item (for estimating the next size)."""
    from marketplace.extensions import db

    seed_s = seed(url, n)
    with app.app_context():
        app.extensions["stripe_client"] = stripe.StripeClient("sk_test_bench", http_client=FakePager(n),
                                                              max_network_retries=0)
        warm_up()
        counts, rec_s, rec_rss, rec_cpu = timed(reconcile, n)
        read_n, read_s, read_rss, read_cpu = timed(read_all, n)
        traced, traced_started = {}, time.perf_counter()
        if n <= traced_max:
            traced = {"reconcile_traced_peak_mib": round(timed(reconcile, n, True)[2], 2),
                      "floor_read_traced_peak_mib": round(timed(read_all, n, True)[2], 2)}
        traced_s = time.perf_counter() - traced_started
        db.session.remove()
    expected = {"matched": n - 2 * PLANTED, "missing_in_ledger": PLANTED, "missing_in_stripe": PLANTED,
                "amount_mismatch": PLANTED}
    assert read_n == n and {k: counts[k] for k in expected} == expected, counts
    ratio = rec_s / read_s
    flat = round(traced["reconcile_traced_peak_mib"] / first_peak, 2) if traced and first_peak else None
    line = {
        "bench": "reconcile", "source": "fake_pager (stripe.HTTPClient rendering JSON pages in-process)",
        "n": n, "seed_s": round(seed_s, 2),
        "reconcile_s": round(rec_s, 3), "floor_read_s": round(read_s, 3),
        "time_ratio": round(ratio, 2), "time_target": TIME_TARGET, "time_ok": ratio <= TIME_TARGET,
        # This process only (not PostgreSQL's): a wall-time ratio far above it means other load.
        "reconcile_cpu_s": round(rec_cpu, 2), "floor_read_cpu_s": round(read_cpu, 2),
        "reconcile_peak_rss_growth_mib": round(rec_rss, 1), "floor_read_peak_rss_growth_mib": round(read_rss, 1),
        **traced,
        "reconcile_traced_peak_vs_smallest": flat,
        "memory_target": {"traced_peak_vs_smallest_max": MEMORY_FLAT, "rss_growth_max_mib": RSS_GROWTH_MAX_MIB},
        "memory_ok": rec_rss <= RSS_GROWTH_MAX_MIB and (flat is None or flat <= MEMORY_FLAT),
        "counts": {k: counts[k] for k in expected}, "status": counts["status"],
    }
    return line, {"plain": (seed_s + rec_s + read_s) / n, "traced": traced_s / n if traced else None}


def estimate(rates: dict, n: int, traced_max: int) -> float:
    """Seconds size n should take, from the previous size's per-item rates (with a margin).

    The traced pass (tracemalloc makes it several times slower) counts only when n has one.
    """
    traced = 0.0
    if n <= traced_max:
        traced = rates["traced"] if rates["traced"] is not None else 4 * rates["plain"]
    return 1.2 * n * (rates["plain"] + traced)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--budget", type=float, default=1200.0, help="seconds; the run stops by itself")
    parser.add_argument("--traced-max", type=int, default=100_000,
                        help="also measure tracemalloc peaks (a slower second pass) up to this size")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_reconcile_{os.getpid()}"
    url = server.rsplit("/", 1)[0] + "/" + name
    deadline = time.monotonic() + args.budget
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("budget exceeded")))
    signal.alarm(int(args.budget) + 1)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        app = make_app(url)
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
        first_peak, rates = None, None
        for n in (int(s) for s in args.sizes.split(",")):
            left = deadline - time.monotonic()
            if rates is not None and (expected := estimate(rates, n, args.traced_max)) > left:
                print(json.dumps({"bench": "reconcile", "n": n, "skipped": "estimated time exceeds the budget",
                                  "estimated_s": round(expected), "left_s": round(left)}))
                continue
            line, rates = bench_size(app, url, n, first_peak, args.traced_max)
            first_peak = first_peak or line.get("reconcile_traced_peak_mib")
            print(json.dumps(line), flush=True)
    finally:
        signal.alarm(0)
        from marketplace.extensions import db

        try:
            with app.app_context():
                db.engine.dispose()
        except Exception:  # the app may not exist if creating it failed
            pass
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
