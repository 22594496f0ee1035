"""Benchmark of POST /api/webhooks/stripe: events/s accepted and acknowledgement latency.

Runs the real app under gunicorn on PostgreSQL (a database of its own, created and dropped)
and Redis (db 13 by default, flushed before and after), beside two other endpoints under
the same gunicorn settings:

- bare_flask, the ceiling: a Flask endpoint that reads the body and answers;
- durable_floor: the least any endpoint that commits the event before answering can do,
  i.e. verify, parse and run the app's own acknowledgement statement on a plain psycopg
  connection, with no extension, pool or ORM. Its ratio to the ceiling bounds what the
  app's ratio can reach on this machine, whatever the app's own overhead.

Each acknowledged event is verified and stored with its outbox row in one committed
statement; no worker runs here, so the events wait in the outbox (a worker's relay takes
them when woken by the commit's NOTIFY). All get signed events from the same concurrent
client, ROUNDS times in alternation; each round sends at most REQUESTS requests for at most
SECONDS seconds. Prints one JSON line with the median round of each, every round's ratio
to the ceiling and their median (target: at least 0.6), the floor's, and the app's ratio
to the floor.

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


def durable_app():
    """The floor of any design that answers after the event is committed: verify, parse and
    run the app's own acknowledgement statement (event + outbox row + NOTIFY, autocommit) on
    one psycopg connection per worker, with nothing else: no extensions, no pool, no ORM.
    """
    import psycopg
    import stripe
    from flask import Flask, request

    from jobs.webhooks import process_event_job
    from marketplace.database import new_id, utcnow
    from marketplace.outbox import _statement_after, job_path
    from marketplace.webhooks.service import _INSERT_EVENT_SQL, _driver_sql, _timestamp

    sql = _driver_sql(_statement_after(_INSERT_EVENT_SQL).text)  # the app's statement, as the app sends it
    job, local = job_path(process_event_job), threading.local()
    app = Flask("durable")

    @app.post(PATH)
    def receive():
        payload = request.get_data().decode()
        stripe.WebhookSignature.verify_header(payload, request.headers["Stripe-Signature"], SECRET, 300)
        event = json.loads(payload)
        if getattr(local, "conn", None) is None:
            local.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        row_id, now = new_id("whe"), utcnow()
        local.conn.execute(sql, {
            "id": row_id, "stripe_event_id": event["id"], "type": event["type"], "account": event.get("account"),
            "livemode": event["livemode"], "api_version": event.get("api_version"),
            "stripe_created_at": _timestamp(event.get("created")), "source": "webhook",
            "status": "received", "attempts": 0, "raw_body": payload, "received_at": now,
            "outbox_id": new_id("obx"), "outbox_job": job, "outbox_args": json.dumps([row_id]),
            "outbox_now": now,
        }).fetchall()
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


SERVERS = {  # name: gunicorn target
    "webhook": "wsgi:app",
    "durable_floor": "bench.webhooks:durable_app()",
    "bare_flask": "bench.webhooks:bare_app()",
}


def measure(env: dict) -> dict[str, list[dict]]:
    """Every server up at once (an idle one costs nothing); ROUNDS rounds, each loading them in turn.

    Alternating webhook, floor, bare, webhook... and taking medians keeps a passing burst of
    other work on the machine from landing on one side only. Returns each server's rounds.
    """
    ports = {name: free_port() for name in SERVERS}
    servers = [gunicorn(target, ports[name], env) for name, target in SERVERS.items()]
    try:
        for name, port in ports.items():
            load(port, events(200, f"{name}-warm"))  # warm every worker: imports, pools, caches
        rounds: dict[str, list[dict]] = {name: [] for name in SERVERS}
        for round_ in range(ROUNDS):
            for name, port in ports.items():
                rounds[name].append(load(port, events(REQUESTS, f"{name}-{round_}")))
    finally:
        for server in servers:
            stop(server)
    return rounds


def _median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda r: r["events_per_s"])[len(rounds) // 2]


def stored(db_url: str, prefix: str) -> int:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*) FROM webhook_events WHERE stripe_event_id LIKE %s",
                            (f"evt_bench_{prefix}-%",)).fetchone()[0]


def _ratios(rounds: dict[str, list[dict]], of: str, to: str) -> list[float]:
    return [round(a["events_per_s"] / b["events_per_s"], 3) for a, b in zip(rounds[of], rounds[to])]


def main() -> None:
    db_name = f"bench_webhooks_{os.getpid()}"
    db_url = f"{PG}/{db_name}"
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": "bench-" + "s" * 40, "DATABASE_URL": db_url,
           "REDIS_URL": REDIS, "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": SECRET,
           "STRIPE_API_BASE": "http://127.0.0.1:9", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    load_before = round(os.getloadavg()[0], 2)  # other processes on the machine skew both figures
    psql(PG, f"CREATE DATABASE {db_name}")
    flush_redis(REDIS)
    try:
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        rounds = measure(env)
        acknowledged = 200 + sum(r["requests"] - r["errors"] for r in rounds["webhook"])
        stored_events = stored(db_url, "webhook")
    finally:
        flush_redis(REDIS)
        psql(PG, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
    ratios, floor_ratios = _ratios(rounds, "webhook", "bare_flask"), _ratios(rounds, "durable_floor", "bare_flask")
    print(json.dumps({
        "bench": "webhooks", "workers": WORKERS, "threads": THREADS, "concurrency": CONCURRENCY, "cpus": os.cpu_count(),
        "rounds": ROUNDS, "load_average_before": load_before,
        **{name: _median_round(server_rounds) for name, server_rounds in rounds.items()},
        "acknowledged_events": acknowledged, "stored_events": stored_events,
        "round_ratios": ratios, "ratio": statistics.median(ratios), "target_ratio": 0.6,
        # The best ratio an endpoint that commits each event before answering reached here.
        "durable_floor_ratios": floor_ratios, "durable_floor_ratio": statistics.median(floor_ratios),
        "ratio_to_durable_floor": statistics.median(_ratios(rounds, "webhook", "durable_floor")),
    }))


if __name__ == "__main__":
    main()
