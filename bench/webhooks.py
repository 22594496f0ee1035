"""Benchmark of POST /api/webhooks/stripe: events/s accepted and acknowledgement latency.

Runs the real app under gunicorn on PostgreSQL (a database of its own, created and dropped)
and Redis (db 13 by default, flushed before and after), beside a bare Flask endpoint under
the same gunicorn settings: the ceiling. Each acknowledged event is verified and stored
with its outbox row in one committed statement; no worker runs here, so the events wait
in the outbox (a worker's relay takes them when woken by the commit's NOTIFY). Both get
signed events from the same concurrent client, ROUNDS times in alternation; each round
sends at most REQUESTS requests for at most SECONDS seconds. Prints one JSON line with the
median round of each, every round's ratio and their median (target: at least 0.6).

    python bench/webhooks.py        # BENCH_PG=postgresql://postgres@127.0.0.1:5432
                                    # BENCH_REDIS=redis://127.0.0.1:6379/13
                                    # BENCH_WORKERS=5 BENCH_THREADS=1 (sync; >1: gthread)
                                    # BENCH_ROUNDS=3 BENCH_REQUESTS=3000 BENCH_SECONDS=20
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import flush_redis, free_port, psql, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/13")
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
WORKERS = int(os.environ.get("BENCH_WORKERS", str(2 * (os.cpu_count() or 1) + 1)))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))  # > 1: gthread workers, as deployed (Dockerfile)
SECRET = "whsec_bench"
PATH = "/api/webhooks/stripe"


def bare_app():
    """The ceiling: a Flask endpoint that reads the body and answers what the real one does."""
    from flask import Flask, request

    app = Flask("bare")

    @app.post(PATH)
    def receive():
        request.get_data()
        return {"received": True}

    return app


def events(n: int, run: str) -> list[tuple[bytes, str]]:
    """n signed payment_intent.succeeded events (about 1.5 kB each), unique ids."""
    import stripe

    signed, now = [], int(time.time())
    for i in range(n):
        body = json.dumps({
            "id": f"evt_bench_{run}_{i:07d}", "object": "event", "type": "payment_intent.succeeded",
            "api_version": "2024-06-20", "created": now, "livemode": False, "pending_webhooks": 1,
            "request": {"id": f"req_{i}", "idempotency_key": None},
            "data": {"object": {
                "id": f"pi_bench_{i:07d}", "object": "payment_intent", "amount": 4999, "currency": "usd",
                "status": "succeeded", "latest_charge": f"ch_bench_{i:07d}", "metadata": {"order_id": f"ord_{i}"},
                "transfer_data": {"destination": "acct_bench"}, "application_fee_amount": 500,
                "payment_method_types": ["card"], "capture_method": "automatic", "description": "x" * 600,
            }},
        }, indent=2)
        signed.append((body.encode(), stripe.WebhookSignature.generate_signature_header(body, SECRET, now)))
    return signed


def gunicorn(target: str, port: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
           "--worker-class", "gthread" if THREADS > 1 else "sync", "--threads", str(THREADS), "--backlog", "2048", "--log-level", "warning", target]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn {target} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"gunicorn {target} did not start")


def post(port: int, body: bytes, signature: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", PATH, body=body, headers={
            "Content-Type": "application/json", "Stripe-Signature": signature})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def load(port: int, work: list[tuple[bytes, str]]) -> dict:
    """Send `work` from CONCURRENCY threads; stop early after SECONDS. Figures of the acknowledgements."""
    latencies, errors, lock, position = [], [0], threading.Lock(), [0]
    deadline = time.perf_counter() + SECONDS

    def worker():
        while time.perf_counter() < deadline:
            with lock:
                if position[0] >= len(work):
                    return
                body, signature = work[position[0]]
                position[0] += 1
            started = time.perf_counter()
            status = post(port, body, signature)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors[0] += status != 200

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors[0], "seconds": round(wall, 2),
        "events_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def measure(env: dict) -> tuple[list[dict], list[dict]]:
    """Both servers up at once (an idle one costs nothing); ROUNDS alternating loads.

    Alternating app, bare, app, bare... and taking medians keeps a passing burst of other
    work on the machine from landing on one side only. Returns the median round of each
    """
    app_port, bare_port = free_port(), free_port()
    servers = [gunicorn("wsgi:app", app_port, env), gunicorn("bench.webhooks:bare_app()", bare_port, env)]
    try:
        load(app_port, events(200, "appwarm"))  # warm every worker: imports, pools, caches
        load(bare_port, events(200, "barewarm"))
        app_rounds, bare_rounds = [], []
        for round_ in range(ROUNDS):
            app_rounds.append(load(app_port, events(REQUESTS, f"app{round_}")))
            bare_rounds.append(load(bare_port, events(REQUESTS, f"bare{round_}")))
    finally:
        for server in servers:
            stop(server)
    return app_rounds, bare_rounds


def _median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda r: r["events_per_s"])[len(rounds) // 2]


def stored(db_url: str) -> int:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*) FROM webhook_events WHERE source = 'webhook'").fetchone()[0]


def main() -> None:
    db_name = f"bench_webhooks_{os.getpid()}"
    db_url = f"{PG}/{db_name}"
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": "bench-secret", "DATABASE_URL": db_url,
           "REDIS_URL": REDIS, "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": SECRET,
           "STRIPE_API_BASE": "http://127.0.0.1:9", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    load_before = round(os.getloadavg()[0], 2)  # other processes on the machine skew both figures
    psql(PG, f"CREATE DATABASE {db_name}")
    flush_redis(REDIS)
    try:
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        app_rounds, bare_rounds = measure(env)
        acknowledged = 200 + sum(r["requests"] - r["errors"] for r in app_rounds)
        stored_events = stored(db_url)
    finally:
        flush_redis(REDIS)
        psql(PG, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
    ratios = [a["events_per_s"] / b["events_per_s"] for a, b in zip(app_rounds, bare_rounds)]
    print(json.dumps({
        "bench": "webhooks", "workers": WORKERS, "threads": THREADS, "concurrency": CONCURRENCY, "cpus": os.cpu_count(),
        "rounds": ROUNDS, "load_average_before": load_before,
        "webhook": _median_round(app_rounds), "bare_flask": _median_round(bare_rounds),
        "acknowledged_events": acknowledged, "stored_events": stored_events,
        "round_ratios": [round(r, 3) for r in ratios],
        "ratio": round(statistics.median(ratios), 3), "target_ratio": 0.6,
    }))


if __name__ == "__main__":
    main()
