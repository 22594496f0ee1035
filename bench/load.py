"""Benchmark of a checkout and webhook mix: throughput and p50/p95/p99 latency per endpoint.

Runs the whole stack on 127.0.0.1: the Stripe emulator (`python -m stripe_emulator`, which
signs and delivers every event to the app), the app under gunicorn as it is deployed
(gthread, BENCH_WORKERS workers x BENCH_THREADS threads) on PostgreSQL (a database of its
own, created and dropped) and Redis (db 12 by default, flushed before and after), and
BENCH_RQ_WORKERS `flask worker` processes that process the events. Rate limits and fraud
thresholds are raised through the environment so the figures are the app's, not the
limiter's.

Set-up over HTTP: vendors register, get an Express account and finish onboarding on the
emulator (active once account.updated is processed), list products; shoppers register; an
admin is made with `flask users create-admin`. Then BENCH_CLIENTS client threads (one
requests.Session each) place orders, create their PaymentIntents and confirm them with
pm_card_visa; every BENCH_REFUND_EVERY-th order, once paid (payment_intent.succeeded
processed), gets a partial refund from the admin in a thread of its own. The mix stops after
BENCH_ORDERS orders or BENCH_SECONDS seconds, whichever comes first.

Latency of the four client endpoints is measured by the client (request sent to response
read). Webhook latency cannot be: the emulator delivers them. It is taken from gunicorn's
access log (`%(D)s`, microseconds from request parsed to response written), for the
deliveries of the mix; the access log gives the same server-side figures for every other
endpoint too (`server_*`), so the two views can be set side by side.

The emulator delivers only the event types the app subscribes to: its endpoints are made as
a deployment makes them (`flask stripe webhook-endpoints`). Then, with the stack stopped,
the Stripe calls each endpoint makes are timed alone (see StripeFloor; BENCH_FLOOR_ORDERS
orders): `stripe_calls_alone_p99_ms` beside each client endpoint, and the target: its p99
at most 3x that (`p99_over_stripe_alone`). Then, with the stack still up, BENCH_CALL_ORDERS
single-vendor checkouts one after another, every event they cause processed, with the
emulator counting the API requests (`/_emulator/requests`): the Stripe calls of one
checkout by method and route, each with why it must be made.

CPU: each process group's CPU time over the mix and the processing of its events, read
from /proc (gunicorn and its workers, the RQ workers and their scheduler, the emulator,
every PostgreSQL process, redis-server, and this client), divided by the checkouts paid.
The app's own share (gunicorn + RQ workers) is set beside its target (60 ms); the share
it cannot remove (emulator, PostgreSQL, client) bounds the rate 2 cores allow, and the
rate target is 25/s or 0.8 of that bound, whichever is lower.

Prints one JSON line per endpoint, a CPU line, a Stripe-calls line, then a summary line.

    python bench/load.py        # BENCH_PG=postgresql://postgres@127.0.0.1:5432
                                # BENCH_REDIS=redis://127.0.0.1:6379/12
"""
from __future__ import annotations

import json
import os
import queue
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the app's gateway, for the Stripe floor
import _stack  # noqa: E402
from _stack import cpu_by_group, flush_redis, free_port, psql, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")
ORDERS = int(os.environ.get("BENCH_ORDERS", "400"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
RQ_WORKERS = int(os.environ.get("BENCH_RQ_WORKERS", "2"))
REFUND_EVERY = int(os.environ.get("BENCH_REFUND_EVERY", "5"))
FLOOR_ORDERS = int(os.environ.get("BENCH_FLOOR_ORDERS", "200"))  # 0: skip the Stripe-calls-alone run
VENDORS = int(os.environ.get("BENCH_VENDORS", "3"))
SHOPPERS = int(os.environ.get("BENCH_SHOPPERS", str(CLIENTS)))
SECRET = "whsec_bench_load"
PASSWORD = "bench-password-not-secret"
TIMEOUT = 30  # seconds, per request

TARGET_OVER_STRIPE = 3  # each client endpoint's p99 at most this many times its Stripe calls' alone
# Why each Stripe call of a single-vendor checkout (and the events it causes) must be made.
WHY = {
    "POST /v1/payment_intents": "the order's PaymentIntent: its client secret goes to the shopper",
    "POST /v1/payment_intents/<pid>/confirm": "the payment itself; its answer, with every expansion booking "
                                              "needs, marks the order paid (no second read)",
    "GET /v1/payment_intents/<pid>": "once, when charge.updated says the charge settled (capture is asynchronous): "
                                     "its balance transaction (Stripe's fee), the application fee and the transfer "
                                     "Stripe made with the vendor's side, read from Stripe, not from the event",
}
SETTLED = ("paid", "partially_refunded", "refunded")
_ID = re.compile(r"/[a-z]+_[0-9a-z]{26}(?=/|$)")


class BenchError(RuntimeError):
    pass


def spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return _stack.spawn(cmd, ROOT, env, log)


def wait_port(proc: subprocess.Popen, port: int, what: str, log: Path) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{what} did not start")


def wait_for(check, what: str, seconds: float = 30.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise BenchError(f"timed out waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, min(len(values), -(-len(values) * q // 100)))
    return values[int(rank) - 1]


def endpoint(method: str, path: str) -> str:
    return f"{method} {_ID.sub('/{id}', path)}"


class Api:
    """A requests.Session against the app; `timed` records client-side latency per endpoint."""

    def __init__(self, base: str, token: str | None = None):
        self.base, self.session = base, requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, expect: int = 200, **kwargs):
        response = self.session.request(method, self.base + path, timeout=TIMEOUT, **kwargs)
        if response.status_code != expect:
            raise BenchError(f"{method} {path} -> {response.status_code} {response.text[:300]}")
        return response.json()

    def timed(self, record, method: str, path: str, expect: int, **kwargs):
        started = time.perf_counter()
        response = self.session.request(method, self.base + path, timeout=TIMEOUT, **kwargs)
        elapsed = time.perf_counter() - started
        record(endpoint(method, path), elapsed, response.status_code == expect)
        if response.status_code != expect:
            raise BenchError(f"{method} {path} -> {response.status_code} {response.text[:300]}")
        return response.json()


def token(base: str, email: str) -> str:
    return Api(base).call("POST", "/api/auth/tokens", 201, json={"email": email, "password": PASSWORD})["token"]


def register(base: str, email: str, role: str) -> str:
    Api(base).call("POST", "/api/auth/register", 201, json={"email": email, "password": PASSWORD, "role": role})
    return token(base, email)


def subscribe(url: str, env: dict) -> dict:
    """The app's webhook endpoints, as a deployment makes them (`flask stripe webhook-endpoints`):
    subscribed to the event types it handles, so Stripe sends nothing else. Their secrets."""
    out = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "stripe", "webhook-endpoints", url],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    secrets_ = dict(re.findall(r"set (STRIPE_\w+_SECRET)=(whsec_\w+)", out))
    if set(secrets_) != {"STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET"}:
        raise BenchError(f"the webhook endpoints were not made: {out}")
    return secrets_


def set_up(base: str, stripe: str, env: dict, run: str) -> tuple[list[str], list[str], str]:
    """Active vendors with products, shoppers and an admin; returns (product ids, shopper tokens, admin token)."""
    products, vendors = [], []
    for v in range(VENDORS):
        api = Api(base, register(base, f"vendor{v}+{run}@bench.example", "vendor"))
        vendor = api.call("POST", "/api/vendors", 201, json={"display_name": f"Bench vendor {v}", "country": "US"})
        api.call("POST", "/api/vendors/me/onboarding-link", 201)
        requests.post(f"{stripe}/_emulator/accounts/{vendor['stripe_account_id']}/onboard", json={},
                      timeout=TIMEOUT).raise_for_status()
        vendors.append(api)
    for api in vendors:  # account.updated, delivered by the emulator and processed by a worker
        wait_for(lambda a=api: a.call("GET", "/api/vendors/me")["status"] == "active", "vendors to turn active")
        for p, price in enumerate((1250, 2999)):
            products.append(api.call("POST", "/api/products", 201, json={
                "name": f"Bench product {p}", "price": price, "currency": "usd", "stock": 10_000_000})["id"])
    shoppers = [register(base, f"shopper{s}+{run}@bench.example", "shopper") for s in range(SHOPPERS)]
    admin_email = f"admin+{run}@bench.example"
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "users", "create-admin", admin_email,
                    "--password", PASSWORD], cwd=ROOT, env=env, check=True, capture_output=True)
    return products, shoppers, token(base, admin_email)


class Mix:
    """The bounded checkout mix: CLIENTS shopper threads and one admin refund thread."""

    def __init__(self, base: str, products: list[str], shoppers: list[str], admin: str):
        self.base, self.products, self.shoppers, self.admin = base, products, shoppers, admin
        self.samples: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.placed = 0
        self.paid_orders: list[tuple[str, str]] = []  # (order id, shopper token), confirmed
        self.refunds: queue.Queue = queue.Queue()
        self.deadline = 0.0
        self.transfer_pending = 0

    def record(self, name: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.samples.setdefault(name, []).append(seconds)
            self.errors[name] = self.errors.get(name, 0) + (not ok)

    def next_order(self) -> int | None:
        with self.lock:
            if self.placed >= ORDERS or time.perf_counter() >= self.deadline:
                return None
            self.placed += 1
            return self.placed

    def shopper(self, index: int) -> None:
        shopper_token = self.shoppers[index % len(self.shoppers)]
        api = Api(self.base, shopper_token)
        while (n := self.next_order()) is not None:
            try:
                items = [{"product_id": self.products[(n + k) % len(self.products)], "quantity": 1 + k}
                         for k in range(1 + n % 2)]
                order = api.timed(self.record, "POST", "/api/orders", 201, json={"items": items},
                                  headers={"Idempotency-Key": f"bench-{secrets.token_hex(8)}"})
                api.timed(self.record, "POST", f"/api/orders/{order['id']}/payment-intent", 201)
                result = api.timed(self.record, "POST", f"/api/orders/{order['id']}/confirm", 200,
                                   json={"payment_method": "pm_card_visa"})
                if result["status"] != "succeeded":
                    raise BenchError(f"confirm answered {result['status']}")
                with self.lock:
                    self.paid_orders.append((order["id"], shopper_token))
                if n % REFUND_EVERY == 0:
                    self.refunds.put(order["id"])
            except (BenchError, requests.RequestException) as exc:
                with self.lock:
                    self.failures.append(str(exc)[:300])

    def refunder(self, done: threading.Event) -> None:
        """Partial refunds by the admin, each once its order is paid (its webhook processed)."""
        api = Api(self.base, self.admin)
        while not (done.is_set() and self.refunds.empty()):
            try:
                order_id = self.refunds.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                wait_for(lambda: api.call("GET", f"/api/orders/{order_id}")["status"] == "paid",
                         f"order {order_id} to be paid", seconds=20)
                self.refund(api, order_id)
            except (BenchError, requests.RequestException) as exc:
                with self.lock:
                    self.failures.append(str(exc)[:300])

    def refund(self, api: Api, order_id: str) -> None:
        """A 409 transfer_pending (the vendor's transfer is still being made) is retried, as a
        client would; those answers are counted apart, not as errors or latency samples."""
        path = f"/api/orders/{order_id}/refunds"
        for _ in range(40):
            started = time.perf_counter()
            response = api.session.post(api.base + path, timeout=TIMEOUT,
                                        json={"amount": 100, "reason": "requested_by_customer"})
            elapsed = time.perf_counter() - started
            if response.status_code == 409 and response.json()["error"]["code"] == "transfer_pending":
                with self.lock:
                    self.transfer_pending += 1
                time.sleep(0.25)
                continue
            self.record(endpoint("POST", path), elapsed, response.status_code == 201)
            if response.status_code != 201:
                raise BenchError(f"POST {path} -> {response.status_code} {response.text[:300]}")
            return
        raise BenchError(f"POST {path}: transfer still pending after 40 attempts")

    def run(self) -> float:
        self.deadline = time.perf_counter() + SECONDS
        done = threading.Event()
        refunder = threading.Thread(target=self.refunder, args=(done,))
        shoppers = [threading.Thread(target=self.shopper, args=(i,)) for i in range(CLIENTS)]
        started = time.perf_counter()
        refunder.start()
        for thread in shoppers:
            thread.start()
        for thread in shoppers:
            thread.join()
        done.set()
        refunder.join()
        return time.perf_counter() - started


class StripeFloor:
    """The Stripe calls each endpoint makes, made alone: the app's own gateway functions with
    the same parameters, from CLIENTS threads, against an emulator of their own (no webhook
    endpoint) with nothing else running. An endpoint's p99 cannot be under its calls' p99, so
    where this is above a target the target is out of reach for any implementation here.

    payment-intent: one PaymentIntent create. confirm: the confirmation, read with
    SUCCESS_EXPAND (what the app books from its answer). refund (every
    REFUND_EVERY-th order, 100 cents): the refund with its balance transaction, then for a destination
    charge the vendor's pyr_ and the fee refunds, for separate charges one reversal and its
    pyr_ per vendor (the transfers themselves, made by a job in the app, are made untimed).
    Half the orders are destination charges, half separate charges across two vendors.
    """

    def __init__(self, orders: int):
        self.orders, self.samples, self.lock, self.next = orders, {}, threading.Lock(), 0

    def record(self, name: str, seconds: float) -> None:
        with self.lock:
            self.samples.setdefault(name, []).append(seconds)

    def run(self, logs: Path) -> dict[str, list[float]]:
        from flask import Flask

        port = free_port()
        emulator = spawn([sys.executable, "-m", "stripe_emulator", "--port", str(port)], dict(os.environ),
                         logs / "floor-emulator.log")
        try:
            wait_port(emulator, port, "the floor's emulator", logs / "floor-emulator.log")
            # The refunds below reverse the destination charge's transfer: let it exist at once.
            requests.post(f"http://127.0.0.1:{port}/_emulator/capture", json={"mode": "sync"},
                          timeout=TIMEOUT).raise_for_status()
            app = Flask("floor")
            app.config.update(STRIPE_SECRET_KEY="sk_test_bench", STRIPE_API_BASE=f"http://127.0.0.1:{port}",
                              STRIPE_MAX_NETWORK_RETRIES=0)
            with app.app_context():
                accounts = [self.account(f"http://127.0.0.1:{port}", v) for v in range(2)]
            threads = [threading.Thread(target=self.client, args=(app, accounts)) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            stop(emulator)
        return self.samples

    @staticmethod
    def account(base: str, v: int) -> str:
        from marketplace import stripe_gateway

        account = stripe_gateway.create_express_account(f"ven_floor{v}", "US", f"floor{v}@bench.example",
                                                        f"floor-account-{v}")["id"]
        requests.post(f"{base}/_emulator/accounts/{account}/onboard", json={}, timeout=TIMEOUT).raise_for_status()
        return account

    def client(self, app, accounts: list[str]) -> None:
        with app.app_context():
            while True:
                with self.lock:
                    if self.next >= self.orders:
                        return
                    self.next += 1
                    n = self.next
                self.order(n, accounts)

    def order(self, n: int, accounts: list[str]) -> None:
        from marketplace import stripe_gateway as gateway
        from marketplace.payments.movement_kinds import REVERSAL_EXPAND, TRANSFER_EXPAND
        from marketplace.payments.service import AUTOMATIC_PAYMENT_METHODS, SUCCESS_EXPAND

        destination, amount, fee = n % 2 == 0, 4249, 425
        params = {"amount": amount, "currency": "usd", "automatic_payment_methods": AUTOMATIC_PAYMENT_METHODS,
                  "metadata": {"order_id": f"ord_floor{n}"}}
        if destination:
            params.update(transfer_data={"destination": accounts[0]}, application_fee_amount=fee)
        else:
            params["transfer_group"] = f"order_floor{n}"
        started = time.perf_counter()
        intent = gateway.create_payment_intent(params, f"floor-pi-{n}")
        self.record("POST /api/orders/{id}/payment-intent", time.perf_counter() - started)

        started = time.perf_counter()
        intent = gateway.confirm_payment_intent(intent["id"], "pm_card_visa", f"floor-confirm-{n}",
                                                expand=SUCCESS_EXPAND)
        charge = intent["latest_charge"]
        self.record("POST /api/orders/{id}/confirm", time.perf_counter() - started)
        if n % REFUND_EVERY:
            return

        refund = {"charge": charge["id"], "amount": 100, "reason": "requested_by_customer",
                  "metadata": {"order_id": f"ord_floor{n}"}, "expand": REFUND_EXPAND}
        if destination:  # the transfer Stripe made (capture is synchronous on the floor's emulator)
            transfers = [(0, charge["transfer"]["id"])]
        else:
            transfers = [(v, gateway.create_transfer(
                {"amount": (amount - fee) // 2, "currency": "usd", "destination": account,
                 "source_transaction": charge["id"], "transfer_group": f"order_floor{n}",
                 "expand": TRANSFER_EXPAND}, f"floor-transfer-{n}-{v}")["id"])
                for v, account in enumerate(accounts)]
        started = time.perf_counter()
        gateway.create_refund(refund, f"floor-refund-{n}")
        for v, transfer in transfers:  # the vendors' shares taken back, each with its pyr_
            gateway.create_transfer_reversal(
                transfer, {"amount": 50, "metadata": {}, "expand": REVERSAL_EXPAND}, f"floor-reversal-{n}-{v}")
        self.record("POST /api/orders/{id}/refunds", time.perf_counter() - started)


def access_log(path: Path, offset: int) -> dict[str, list[float]]:
    """Server-side durations (seconds) per endpoint from the access log, past `offset`."""
    durations: dict[str, list[float]] = {}
    with open(path, "rb") as log:
        log.seek(offset)
        for line in log.read().decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[0] == "ACCESS":
                _, method, path_, status, micros = parts
                durations.setdefault(f"{endpoint(method, path_)} {status}", []).append(int(micros) / 1e6)
    return durations


def figures(samples: list[float], wall: float) -> dict:
    samples = sorted(samples)
    return {
        "count": len(samples), "per_s": round(len(samples) / wall, 1),
        "p50_ms": round(percentile(samples, 50) * 1000, 1),
        "p95_ms": round(percentile(samples, 95) * 1000, 1),
        "p99_ms": round(percentile(samples, 99) * 1000, 1),
    }


CPU_NAMES = {"postgresql": "postgres", "redis": "redis-server"}
APP_PROCESSES = ("gunicorn", "rq_workers")
FLOOR_PROCESSES = ("emulator", "postgresql", "client")  # the CPU the app cannot remove
TARGET_CHECKOUTS_PER_S = 25
TARGET_APP_CPU_MS = 60
CALL_ORDERS = int(os.environ.get("BENCH_CALL_ORDERS", "20"))  # 0: skip counting Stripe calls
REFUND_EXPAND = ["balance_transaction"]  # what the refund movement asks for (payments/movement_kinds.py)


def quiet(stripe: str, database_url: str) -> bool:
    """Nothing left to do anywhere: no delivery pending at the emulator, no event unprocessed,
    no outbox row unfinished, no money movement open."""
    import psycopg

    status = requests.get(f"{stripe}/_emulator/webhooks", timeout=TIMEOUT).json()
    if status["pending"] or status["in_flight"]:
        return False
    with psycopg.connect(database_url) as conn:
        busy = conn.execute(
            "SELECT (SELECT count(*) FROM outbox_messages WHERE done_at IS NULL)"
            " + (SELECT count(*) FROM webhook_events WHERE status = 'received')"
            " + (SELECT count(*) FROM movements WHERE status IN ('planned', 'sent', 'unknown'))").fetchone()[0]
    return busy == 0


def wait_quiet(stripe: str, database_url: str, seconds: float = 120) -> None:
    """quiet(), twice in a row a second apart (an event may still be on its way)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if quiet(stripe, database_url):
            time.sleep(1.0)
            if quiet(stripe, database_url):
                return
        time.sleep(0.2)
    raise BenchError("the stack did not go quiet")


def stripe_calls_per_checkout(base: str, stripe: str, database_url: str, product: str, shopper: str) -> dict:
    """The Stripe API requests of one single-vendor checkout: CALL_ORDERS orders, one after
    another, each placed, given its PaymentIntent and confirmed, then every event they cause
    processed (the order paid, its charge settled and booked); counted at the emulator."""
    api = Api(base, shopper)
    wait_quiet(stripe, database_url)  # the mix's work all done: only these orders' calls are counted
    requests.delete(f"{stripe}/_emulator/requests", timeout=TIMEOUT).raise_for_status()
    orders = []
    for _ in range(CALL_ORDERS):
        order = api.call("POST", "/api/orders", 201, json={"items": [{"product_id": product, "quantity": 1}]})
        api.call("POST", f"/api/orders/{order['id']}/payment-intent", 201)
        api.call("POST", f"/api/orders/{order['id']}/confirm", 200, json={"payment_method": "pm_card_visa"})
        orders.append(order["id"])
    for order_id in orders:
        wait_for(lambda o=order_id: api.call("GET", f"/api/orders/{o}")["status"] == "paid", "the order paid")
    time.sleep(2.0)  # settlement (1 s after capture) and the charge.updated it announces
    wait_quiet(stripe, database_url)
    counted = requests.get(f"{stripe}/_emulator/requests", timeout=TIMEOUT).json()
    return {"orders": CALL_ORDERS, "per_checkout": round(counted["total"] / CALL_ORDERS, 2),
            "by_call": {f"{c['method']} {c['path']}": round(c["count"] / CALL_ORDERS, 2) for c in counted["data"]}}


def report(mix: Mix, wall: float, server: dict[str, list[float]], webhook_wall: float,
           floor: dict[str, list[float]], cpu: dict[str, float], calls: dict) -> None:
    by_endpoint: dict[str, list[float]] = {}
    for key, values in server.items():
        name, _, status = key.rpartition(" ")
        by_endpoint.setdefault(name, []).extend(values)
    lines, met = [], []
    names = list(mix.samples) + ["POST /api/webhooks/stripe"]
    for name in names:
        client = mix.samples.get(name)
        served = by_endpoint.get(name, [])
        if client:
            line = {"endpoint": name, "measured": "client", **figures(client, wall),
                    "errors": mix.errors.get(name, 0)}
        elif served:
            non_200 = sum(len(v) for k, v in server.items() if k.startswith(name + " ") and not k.endswith(" 200"))
            line = {"endpoint": name, "measured": "gunicorn access log", **figures(served, webhook_wall),
                    "non_200": non_200}
        else:
            continue
        if served and client:
            s = figures(served, wall)
            line.update(server_p50_ms=s["p50_ms"], server_p99_ms=s["p99_ms"])
        if floor.get(name) and client:
            alone = sorted(floor[name])
            alone_p99 = percentile(alone, 99) * 1000
            line.update(stripe_calls_alone_p50_ms=round(percentile(alone, 50) * 1000, 1),
                        stripe_calls_alone_p99_ms=round(alone_p99, 1),
                        p99_over_stripe_alone=round(line["p99_ms"] / alone_p99, 2),
                        target_p99_over_stripe_alone=TARGET_OVER_STRIPE)
            met.append(line["p99_ms"] <= TARGET_OVER_STRIPE * alone_p99)
        lines.append(line)
    for line in lines:
        print(json.dumps({"bench": "load", **line}))
    paid = max(1, len(mix.paid_orders))
    cpu_ms = {group: round(seconds * 1000 / paid, 1) for group, seconds in cpu.items()}
    app_ms = round(sum(cpu_ms[g] for g in APP_PROCESSES), 1)
    floor_ms = round(sum(cpu_ms[g] for g in FLOOR_PROCESSES), 1)
    bound = round((os.cpu_count() or 1) * 1000 / floor_ms, 1) if floor_ms else None
    target_rate = min(TARGET_CHECKOUTS_PER_S, round(0.8 * bound, 1)) if bound else TARGET_CHECKOUTS_PER_S
    rate = round(len(mix.paid_orders) / wall, 1)
    print(json.dumps({"bench": "load", "cpu_ms_per_checkout": cpu_ms, "app_cpu_ms_per_checkout": app_ms,
                      "app_cpu_target_ms": TARGET_APP_CPU_MS, "app_cpu_met": app_ms <= TARGET_APP_CPU_MS,
                      "floor_cpu_ms_per_checkout": floor_ms, "rate_the_floor_allows_per_s": bound,
                      "checkouts_per_s": rate, "target_checkouts_per_s": target_rate,
                      "rate_met": rate >= target_rate}))
    if calls:
        calls["why"] = {call: WHY.get(call, "not expected: look into it") for call in calls["by_call"]}
        print(json.dumps({"bench": "load", "stripe_calls_per_single_vendor_checkout": calls}))
    print(json.dumps({
        "bench": "load", "summary": True, "orders": mix.placed, "paid": len(mix.paid_orders),
        "seconds": round(wall, 2), "checkouts_per_s": round(len(mix.paid_orders) / wall, 1),
        "failures": len(mix.failures), "refunds_retried_transfer_pending": mix.transfer_pending, "first_failures": mix.failures[:3],
        "clients": CLIENTS, "gunicorn": f"{WORKERS}x{THREADS} gthread", "rq_workers": RQ_WORKERS,
        "cpus": os.cpu_count(), "load_average_before": LOAD_BEFORE,
        "p99_targets_met": f"{sum(met)}/{len(met)}",
    }))


LOAD_BEFORE = round(os.getloadavg()[0], 2)


def main() -> None:
    run = secrets.token_hex(3)
    db_name = f"bench_load_{os.getpid()}"
    app_port, stripe_port = free_port(), free_port()
    base, stripe = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{stripe_port}"
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": "bench-" + "s" * 40, "DATABASE_URL": f"{PG}/{db_name}",
           "REDIS_URL": REDIS, "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": SECRET,
           "STRIPE_API_BASE": stripe, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
           "RATELIMIT_REGISTER": "100000 per hour", "RATELIMIT_TOKENS": "100000 per minute",
           "RATELIMIT_CHECKOUT": "100000 per minute", "FRAUD_MAX_ORDERS": "1000000",
           "FRAUD_MAX_FAILED_PAYMENTS": "1000000", "OUTBOX_RELAY_INTERVAL": "1"}
    logs = Path(tempfile.mkdtemp(prefix="bench-load-"))
    access = logs / "access.log"
    access.touch()
    procs: list[subprocess.Popen] = []
    psql(PG, f"CREATE DATABASE {db_name}")
    flush_redis(REDIS)
    try:
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        emulator = spawn([sys.executable, "-m", "stripe_emulator", "--port", str(stripe_port)],
                         env, logs / "emulator.log")
        procs.append(emulator)
        wait_port(emulator, stripe_port, "the emulator", logs / "emulator.log")
        env.update(subscribe(f"{base}/api/webhooks/stripe", env))
        app = spawn([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{app_port}", "--workers", str(WORKERS),
                     "--threads", str(THREADS), "--worker-class", "gthread", "--log-level", "warning",
                     "--access-logfile", str(access),
                     "--access-logformat", "ACCESS %(m)s %(U)s %(s)s %(D)s", "wsgi:app"], env, logs / "gunicorn.log")
        procs.append(app)
        wait_port(app, app_port, "gunicorn", logs / "gunicorn.log")
        workers = [spawn([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], env, logs / f"worker{i}.log")
                   for i in range(RQ_WORKERS)]
        procs.extend(workers)
        products, shoppers, admin = set_up(base, stripe, env, run)
        sessions = {"gunicorn": [app.pid], "rq_workers": [w.pid for w in workers], "emulator": [emulator.pid]}

        mix = Mix(base, products, shoppers, admin)
        offset = access.stat().st_size
        cpu_before, client_before = cpu_by_group(sessions, CPU_NAMES), sum(os.times()[:2])
        wall = mix.run()
        # Deliveries lag behind the checkouts: wait (bounded) for the last order to be paid or refunded.
        webhook_started = time.perf_counter() - wall
        if mix.paid_orders:
            last_id, last_token = mix.paid_orders[-1]
            try:
                wait_for(lambda: Api(base, last_token).call("GET", f"/api/orders/{last_id}")["status"] in SETTLED,
                         "the last order's webhook", seconds=30)
            except BenchError as exc:
                mix.failures.append(str(exc))
        time.sleep(1.0)  # the access log is written after each response
        cpu_after, client_after = cpu_by_group(sessions, CPU_NAMES), sum(os.times()[:2])
        cpu = {group: cpu_after[group] - cpu_before[group] for group in cpu_after}
        cpu["client"] = client_after - client_before
        server, webhook_wall = access_log(access, offset), time.perf_counter() - webhook_started
        calls = (stripe_calls_per_checkout(base, stripe, f"{PG}/{db_name}", products[0], shoppers[0])
                 if CALL_ORDERS else {})
        for proc in reversed(procs):
            stop(proc)
        floor = StripeFloor(min(ORDERS, FLOOR_ORDERS)).run(logs) if FLOOR_ORDERS else {}
        report(mix, wall, server, webhook_wall, floor, cpu, calls)
    finally:
        for proc in reversed(procs):
            stop(proc)
        flush_redis(REDIS)
        psql(PG, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


if __name__ == "__main__":
    main()
