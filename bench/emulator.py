"""Benchmark of the Stripe emulator: requests per second over one keep-alive connection.

Starts `python -m stripe_emulator` on a free port in a subprocess, drives it with
http.client, and prints one JSON line of figures.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": "Bearer sk_test_bench",
        "Content-Type": "application/x-www-form-urlencoded"}


def free_port():
    """An unused TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port, deadline=10.0):
    """Wait until the emulator answers."""
    end = time.time() + deadline
    while time.time() < end:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/_emulator/clock")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("emulator did not start")


def call(conn, method, path, body=None):
    """One request on a kept-alive connection; returns the parsed JSON."""
    conn.request(method, path, body=body, headers=AUTH)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 400:
        raise RuntimeError("%s %s -> %d %s" % (method, path, resp.status, data[:200]))
    return json.loads(data)


def rate(conn, method, path, n, body=None):
    """Requests per second for n sequential requests."""
    start = time.perf_counter()
    for _ in range(n):
        call(conn, method, path, body)
    elapsed = time.perf_counter() - start
    return round(n / elapsed, 1), round(elapsed / n * 1000, 3)


# a card-only PaymentIntent confirmed by the server needs no return_url
CARD_ONLY = ("&automatic_payment_methods[enabled]=true"
             "&automatic_payment_methods[allow_redirects]=never")


def main(n=2000):
    """Run the benchmark and print one JSON line."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "stripe_emulator", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        pi = call(conn, "POST", "/v1/payment_intents",
                  "amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true" + CARD_ONLY)
        figures = {"bench": "stripe_emulator", "requests": n}
        figures["balance_rps"], figures["balance_ms"] = rate(conn, "GET", "/v1/balance", n)
        figures["retrieve_rps"], figures["retrieve_ms"] = rate(
            conn, "GET", "/v1/payment_intents/" + pi["id"], n)
        figures["confirmed_payment_rps"], figures["confirmed_payment_ms"] = rate(
            conn, "POST", "/v1/payment_intents", n // 4,
            "amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true" + CARD_ONLY)
        figures["list_bt_rps"], figures["list_bt_ms"] = rate(
            conn, "GET", "/v1/balance_transactions?limit=100", n // 4)
        print(json.dumps(figures))
    finally:
        proc.terminate()
        proc.wait(timeout=5)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
