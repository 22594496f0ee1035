"""Benchmark of a payout run fanned out over N RQ workers, against Stripe's rate limits.

For each N in BENCH_RQ_WORKERS (default 1,2,4,8), from scratch: a PostgreSQL database of its
own (created, migrated, dropped), Redis db BENCH_REDIS (flushed), the Stripe emulator as a
process. BENCH_VENDORS vendors (default 10^4) each get an onboarded Express account on the
emulator holding an available balance (transfers from a platform funded by one charge) and,
in the ledger, a sale older than the payout hold that owes them the same amount. Then the
emulator is given a per-call latency (BENCH_LATENCY, default 0.15 s) and Stripe's live rate
limits (BENCH_STRIPE_RATE reads and as many writes per second, default 100; a request past
them is answered 429 with no Stripe-Should-Retry, as Stripe answers), N `flask worker`
processes start, and one run is asked for as an admin asks for it (a job). Its wall time
runs from the request to the run ended with every payout's movement at an end.

The bound: the Stripe calls a run needs (one balance read and one payout per vendor) over
the rate Stripe allows (reads and writes are limited apart, so they overlap): the fastest
any implementation could pay them. Target: wall time <= 1.25 x the bound, with 0 duplicate
payouts (every account's payouts are listed at the emulator afterwards) and no payout left
unfinished (a call refused for the rate is asked again, never dropped). The workers pace
their calls through one shared window at BENCH_PACE of Stripe's rate (default 0.95: a
request is counted when it leaves, Stripe counts it when it arrives) and pay
PAYOUT_CONCURRENCY vendors each at once (default: enough in flight across the N workers for
the rate at the latency; printed). CPU seconds by process group are printed beside.

    python bench/payout_run.py        # BENCH_PG=postgresql://postgres@127.0.0.1:5432
                                      # BENCH_REDIS=redis://127.0.0.1:6379/12
"""
from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
import _stack  # noqa: E402
from _stack import cpu_by_group, flush_redis, free_port, psql, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")
VENDORS = int(os.environ.get("BENCH_VENDORS", "10000"))
WORKER_COUNTS = [int(n) for n in os.environ.get("BENCH_RQ_WORKERS", "1,2,4,8").split(",")]
LATENCY = float(os.environ.get("BENCH_LATENCY", "0.15"))
RATE = int(os.environ.get("BENCH_STRIPE_RATE", "100"))
PACE = float(os.environ.get("BENCH_PACE", "0.95"))
SHARD_SIZE = int(os.environ.get("BENCH_SHARD_SIZE", "100"))
AMOUNT = 1500  # what each vendor is owed, cents
TARGET_RATIO = 1.25
KEY = {"Authorization": "Bearer sk_test_bench"}
CPU_NAMES = {"postgresql": "postgres", "redis": "redis-server"}


class BenchError(RuntimeError):
    pass


def spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return _stack.spawn(cmd, ROOT, env, log)


def wait_for(check, what: str, seconds: float = 60.0, every: float = 0.1):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise BenchError(f"timed out waiting for {what}")


class Stripe:
    """The emulator over HTTP, one kept-alive session per thread (a connection per call would
    leave tens of thousands of sockets in TIME_WAIT and run the machine out of local ports)."""

    def __init__(self, base: str):
        self.base = base
        self.local = threading.local()

    def call(self, method: str, path: str, account: str | None = None, **data):
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        headers = {**KEY, **({"Stripe-Account": account} if account else {})}
        if path.startswith("/_emulator"):
            response = session.request(method, self.base + path, json=data, timeout=60)
        else:
            response = session.request(method, self.base + path, data=data or None, headers=headers, timeout=60)
        if response.status_code >= 400:
            raise BenchError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def limits(self, **settings) -> None:
        self.call("POST", "/_emulator/limits", **settings)


def fund_vendors(stripe: Stripe, count: int) -> list[str]:
    """`count` onboarded Express accounts, each holding AMOUNT available (no latency, no limits)."""
    stripe.call("POST", "/_emulator/capture", mode="sync")
    for start in range(0, count, 50_000):  # one charge holds at most 999,999.99
        n = min(50_000, count - start)
        intent = stripe.call("POST", "/v1/payment_intents", amount=int(n * AMOUNT * 1.05) + 100_000, currency="usd",
                             **{"automatic_payment_methods[enabled]": "true",
                                "automatic_payment_methods[allow_redirects]": "never"})
        stripe.call("POST", f"/v1/payment_intents/{intent['id']}/confirm", payment_method="pm_card_bypassPending")

    def one(i: int) -> str:
        account = stripe.call("POST", "/v1/accounts", type="express", country="US",
                              email=f"vendor{i}@bench.example")["id"]
        stripe.call("POST", f"/_emulator/accounts/{account}/onboard")
        stripe.call("POST", "/v1/transfers", amount=AMOUNT, currency="usd", destination=account)
        return account

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def fill_database(database_url: str, accounts: list[str]) -> None:
    """A user, a vendor and a sale older than the hold (AMOUNT on its Stripe balance) each."""
    import psycopg

    now = datetime.now(timezone.utc)
    sold = now - timedelta(days=30)
    run = secrets.token_hex(3)
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        users, vendors, entries, postings = [], [], [], []
        for i, account in enumerate(accounts):
            user, vendor, entry = f"usr_b{run}{i:07d}", f"ven_b{run}{i:07d}", f"je_b{run}{i:07d}"
            users.append((user, f"vendor{i}@bench.example", "x", "vendor", now))
            vendors.append((vendor, user, f"Vendor {i}", "US", f"vendor{i}@bench.example", account, "active",
                            False, True, True, True, "[]", now, now))
            entries.append((entry, f"bench-sale-{i}", "vendor_payment", "", sold, now))
            postings.append((f"pa_{entry}", entry, 0, f"vendor:{vendor}:stripe_balance", "usd", AMOUNT))
            postings.append((f"pb_{entry}", entry, 1, f"vendor:{vendor}:transfer_clearing", "usd", -AMOUNT))
        cur.executemany("INSERT INTO users (id, email, password_hash, role, created_at) VALUES (%s,%s,%s,%s,%s)",
                        users)
        cur.executemany(
            "INSERT INTO vendors (id, user_id, display_name, country, email, stripe_account_id, status, suspended,"
            " charges_enabled, payouts_enabled, details_submitted, requirements_due, created_at, updated_at)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", vendors)
        cur.executemany("INSERT INTO journal_entries (id, entry_key, kind, description, occurred_at, created_at)"
                        " VALUES (%s,%s,%s,%s,%s,%s)", entries)
        cur.executemany("INSERT INTO postings (id, entry_id, seq, account, currency, amount)"
                        " VALUES (%s,%s,%s,%s,%s,%s)", postings)
        cur.execute("ANALYZE")
        conn.commit()


def outcome(database_url: str) -> dict:
    import psycopg

    with psycopg.connect(database_url) as conn:
        run = conn.execute("SELECT status, payouts_created, total_amount, shards_total, shards_done, error"
                           " FROM payout_runs").fetchone()
        movements = dict(conn.execute("SELECT status, count(*) FROM movements WHERE kind = 'payout'"
                                      " GROUP BY status").fetchall())
    return {"run": run, "movements": movements}


def ended(database_url: str) -> dict | None:
    state = outcome(database_url)
    run, movements = state["run"], state["movements"]
    if run is None or run[0] not in ("completed", "failed"):
        return None
    if any(movements.get(s) for s in ("planned", "sent", "unknown")):
        return None
    return state


def duplicates(stripe: Stripe, accounts: list[str]) -> tuple[int, int]:
    """(accounts paid more than once, accounts not paid) as the emulator lists their payouts."""
    with ThreadPoolExecutor(16) as pool:
        counts = list(pool.map(lambda a: len(stripe.call("GET", "/v1/payouts", account=a, limit=100)["data"]),
                               accounts))
    return sum(1 for c in counts if c > 1), sum(1 for c in counts if c == 0)


def bench(workers: int, logs: Path) -> dict:
    db_name = f"bench_payout_run_{os.getpid()}_{workers}"
    database_url = f"{PG}/{db_name}"
    port = free_port()
    stripe = Stripe(f"http://127.0.0.1:{port}")
    concurrency = max(2, math.ceil(2 * RATE * (LATENCY + 0.05) * 1.25 / workers))
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": "bench-" + "s" * 40, "DATABASE_URL": database_url,
           "REDIS_URL": REDIS, "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": "whsec_bench_payout_run",
           "STRIPE_API_BASE": stripe.base, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
           "STRIPE_READS_PER_SECOND": str(int(RATE * PACE)), "STRIPE_WRITES_PER_SECOND": str(int(RATE * PACE)),
           "PAYOUT_CONCURRENCY": str(concurrency), "PAYOUT_SHARD_SIZE": str(SHARD_SIZE),
           "PAYOUT_HOLD_DAYS": "7", "OUTBOX_RELAY_INTERVAL": "1"}
    psql(PG, f"CREATE DATABASE {db_name}")
    flush_redis(REDIS)
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        emulator = spawn([sys.executable, "-m", "stripe_emulator", "--port", str(port)], env, logs / f"emulator{workers}.log")
        procs.append(emulator)
        wait_for(lambda: _up(stripe), "the emulator")
        started = time.perf_counter()
        accounts = fund_vendors(stripe, VENDORS)
        fill_database(database_url, accounts)
        setup_s = time.perf_counter() - started
        group = [spawn([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], env, logs / f"worker{workers}-{i}.log")
                 for i in range(workers)]
        procs.extend(group)
        from redis import Redis
        from rq import Worker

        wait_for(lambda: len(Worker.all(connection=Redis.from_url(REDIS))) >= workers, "the workers", 60)
        stripe.call("DELETE", "/_emulator/requests")
        stripe.limits(latency_seconds=LATENCY, read_per_second=RATE, write_per_second=RATE, should_retry=False)
        sessions = {"rq_workers": [w.pid for w in group], "emulator": [emulator.pid]}
        cpu_before = cpu_by_group(sessions, CPU_NAMES)
        started = time.perf_counter()
        _ask_for_a_run(env)
        state = wait_for(lambda: ended(database_url), "the run to end", seconds=3600, every=0.2)
        wall = time.perf_counter() - started
        cpu_after = cpu_by_group(sessions, CPU_NAMES)
        stripe.limits(latency_seconds=0, read_per_second=0, write_per_second=0)
        counted = stripe.call("GET", "/_emulator/requests")
        twice, unpaid = duplicates(stripe, accounts)
    finally:
        for proc in reversed(procs):
            stop(proc)
        flush_redis(REDIS)
        psql(PG, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
    calls = {f"{row['method']} {row['path']}": row["count"] - row["rate_limited"] for row in counted["data"]}
    reads = sum(n for name, n in calls.items() if name.startswith("GET "))
    writes = sum(n for name, n in calls.items() if not name.startswith("GET "))
    bound = max(VENDORS / RATE, VENDORS / RATE)  # one read and one write per vendor, limited apart
    status, created, total, shards, shards_done, error = state["run"]
    return {
        "bench": "payout_run", "rq_workers": workers, "vendors": VENDORS, "payout_concurrency_per_worker": concurrency,
        "shard_size": SHARD_SIZE, "latency_s": LATENCY, "stripe_rate_per_s": {"read": RATE, "write": RATE},
        "pace_per_s": int(RATE * PACE), "calls_needed": 2 * VENDORS, "calls_made": {"read": reads, "write": writes},
        "calls_by_route": calls, "rate_limited_429": counted["rate_limited"],
        "bound_s": round(bound, 1), "wall_s": round(wall, 1), "ratio": round(wall / bound, 2),
        "target_ratio": TARGET_RATIO, "met": wall <= TARGET_RATIO * bound and twice == 0 and unpaid == 0
        and status == "completed",
        "run": {"status": status, "payouts": created, "total": total, "shards": shards, "shards_done": shards_done,
                "error": error}, "movements": state["movements"],
        "duplicate_payouts": twice, "vendors_unpaid": unpaid,
        "cpu_s": {g: round(cpu_after[g] - cpu_before[g], 1) for g in cpu_after}, "setup_s": round(setup_s, 1),
    }


def _up(stripe: Stripe) -> bool:
    try:
        stripe.call("GET", "/_emulator/clock")
        return True
    except (requests.RequestException, BenchError):
        return False


def _ask_for_a_run(env: dict) -> None:
    """What POST /api/admin/payout-runs does: the run and its job, handed to the workers."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if isinstance(v, str)})
    try:
        from marketplace import create_app, outbox
        from marketplace.payouts import service

        app = create_app()
        with app.app_context():
            service.create_run()
            outbox.relay_if_committed()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    logs = Path(tempfile.mkdtemp(prefix="bench-payout-run-"))
    results = []
    for workers in WORKER_COUNTS:
        line = bench(workers, logs)
        results.append(line)
        print(json.dumps(line), flush=True)
    print(json.dumps({"bench": "payout_run", "summary": True, "vendors": VENDORS, "cpus": os.cpu_count(),
                      "ratios": {r["rq_workers"]: r["ratio"] for r in results}, "target_ratio": TARGET_RATIO,
                      "targets_met": f"{sum(r['met'] for r in results)}/{len(results)}", "logs": str(logs)}))


if __name__ == "__main__":
    main()
