"""Per-call latency and Stripe's read and write rate limits (`/_emulator/limits`), as a
benchmark of work fanned out over workers needs them; through HTTP and the stripe package."""
import subprocess
import sys
import threading
import time

import pytest
import requests
import stripe

from stripe_emulator.__main__ import main
from stripe_emulator.limits import Limits

from .conftest import ValidatingClient

AUTH = {"Authorization": "Bearer sk_test_emulator"}
OFF = {"latency_seconds": 0.0, "read_per_second": None, "write_per_second": None,
       "should_retry": False}


@pytest.fixture
def limits(control, server):
    """Set limits on the shared emulator; they are switched off again afterwards."""
    def set_limits(**body):
        return control.post("limits", **body)
    yield set_limits
    requests.post(server.url + "/_emulator/limits", json=OFF, timeout=10).raise_for_status()


def _get(server, path, headers=None):
    return requests.get(server.url + path, headers={**AUTH, **(headers or {})}, timeout=10)


def _post(server, path, data, key=None):
    headers = dict(AUTH, **({"Idempotency-Key": key} if key else {}))
    return requests.post(server.url + path, data=data, headers=headers, timeout=10)


def _counted(control):
    counted = control.get("requests")
    return counted, {(r["method"], r["path"]): (r["count"], r["rate_limited"])
                     for r in counted["data"]}


def _client(server, retries):
    return stripe.StripeClient("sk_test_emulator", max_network_retries=retries,
                               base_addresses={"api": server.url, "connect": server.url,
                                               "files": server.url},
                               http_client=ValidatingClient())


def test_limits_are_off_by_default_and_set_by_any_subset(limits, control, server):
    assert control.get("limits") == OFF
    assert limits(read_per_second=100) == dict(OFF, read_per_second=100)
    assert limits(latency_seconds=0.01, write_per_second=100) == dict(
        OFF, latency_seconds=0.01, read_per_second=100, write_per_second=100)
    assert limits(read_per_second=0, write_per_second=None) == dict(OFF, latency_seconds=0.01)
    assert control.get("limits") == dict(OFF, latency_seconds=0.01)


@pytest.mark.parametrize("body", [{"latency_seconds": -1}, {"latency_seconds": 31},
                                  {"latency_seconds": "soon"}, {"read_per_second": -5},
                                  {"write_per_second": 2.5}, {"write_per_second": True},
                                  {"should_retry": "maybe"}, {"reads_per_second": 100}])
def test_a_limit_that_makes_no_sense_is_refused_and_nothing_changes(limits, server, body):
    limits(read_per_second=7)
    answer = requests.post(server.url + "/_emulator/limits",
                           json=dict(body, write_per_second=body.get("write_per_second", 3)),
                           timeout=10)
    assert answer.status_code == 400, answer.text
    assert requests.get(server.url + "/_emulator/limits", timeout=10).json() == dict(
        OFF, read_per_second=7)  # all checked before any is applied


def test_latency_delays_every_api_answer_but_no_control(limits, control, server):
    limits(latency_seconds=0.15)
    started = time.monotonic()
    assert _get(server, "/v1/balance").status_code == 200
    assert _get(server, "/v1/nothing_here").status_code == 404  # an error is late too
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    control.get("clock")
    control.get("requests")
    assert time.monotonic() - started < 0.15


def test_latency_does_not_serialise_concurrent_requests(limits, server):
    limits(latency_seconds=0.15)
    workers, statuses, ready = 8, [], threading.Barrier(8)

    def call(index):
        with requests.Session() as session:  # a connection of its own, as a worker has
            ready.wait()
            if index % 2:
                answer = session.post(server.url + "/v1/accounts", data={"type": "express"},
                                      headers=AUTH, timeout=10)
            else:
                answer = session.get(server.url + "/v1/balance", headers=AUTH, timeout=10)
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(workers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    assert statuses == [200] * workers
    assert 0.15 <= wall < 0.45, wall  # about one latency, not 8 x 0.15 = 1.2 s


def test_reads_and_writes_are_limited_separately_across_accounts(limits, control, server):
    vendor = _post(server, "/v1/accounts", {"type": "express"}).json()["id"]
    requests.delete(server.url + "/_emulator/requests", timeout=10).raise_for_status()
    limits(read_per_second=2, write_per_second=1)
    assert _get(server, "/v1/balance").status_code == 200
    # on behalf of a connected account: the same (platform's) window
    assert _get(server, "/v1/balance", {"Stripe-Account": vendor}).status_code == 200
    assert _get(server, "/v1/accounts/" + vendor).status_code == 429  # reads spent
    assert _post(server, "/v1/accounts", {"type": "express"}).status_code == 200  # writes are not
    assert _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"}).status_code == 429
    requests.get(server.url + "/_emulator/clock", timeout=10).raise_for_status()  # never limited
    counted, by_route = _counted(control)
    assert counted["total"] == 5 and counted["rate_limited"] == 2
    assert by_route == {("GET", "/v1/balance"): (2, 0), ("GET", "/v1/accounts/<aid>"): (1, 1),
                        ("POST", "/v1/accounts"): (1, 0), ("POST", "/v1/payment_intents"): (1, 1)}


def test_a_rate_limited_answer_is_stripes_429(limits, server):
    limits(read_per_second=1, should_retry=True)
    _get(server, "/v1/balance")
    limited = _get(server, "/v1/balance")
    assert limited.status_code == 429
    assert limited.headers["Stripe-Should-Retry"] == "true"
    assert limited.headers["Request-Id"].startswith("req_")
    error = limited.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "rate_limit"
    assert error["message"] == ("Request rate limit exceeded. Learn more about rate limits here "
                                "https://stripe.com/docs/rate-limits.")
    limits(should_retry=False)  # as Stripe answers its rate limiter's 429s
    limited = _get(server, "/v1/balance")
    assert limited.status_code == 429 and "Stripe-Should-Retry" not in limited.headers


def test_a_refused_request_changes_nothing_and_is_not_kept_under_its_key(limits, server):
    intent = {"amount": 1000, "currency": "usd"}
    limits(write_per_second=1)
    first = _post(server, "/v1/payment_intents", intent).json()["id"]
    refused = _post(server, "/v1/payment_intents", intent, key="payout-run-1")
    assert refused.status_code == 429
    listed = _get(server, "/v1/payment_intents").json()["data"]
    assert [pi["id"] for pi in listed] == [first]  # nothing made
    limits(write_per_second=0)  # instead of waiting for the window to pass
    retried = _post(server, "/v1/payment_intents", intent, key="payout-run-1")
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    again = _post(server, "/v1/payment_intents", intent, key="payout-run-1")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == retried.json()["id"]
    assert len(_get(server, "/v1/payment_intents").json()["data"]) == 2


def test_the_stripe_package_retries_a_rate_limited_request_and_succeeds(limits, control, server):
    limits(write_per_second=1, should_retry=False)
    started = time.monotonic()
    assert _post(server, "/v1/accounts", {"type": "express"}).status_code == 200  # fills the window
    with pytest.raises(stripe.RateLimitError):  # no Stripe-Should-Retry: the package gives up
        _client(server, retries=2).v1.accounts.create(params={"type": "express"})
    limits(should_retry=True)
    time.sleep(max(0.0, 0.55 - (time.monotonic() - started)))
    # refused now; the package's first retry (0.5 s later) comes after the window passed
    account = _client(server, retries=2).v1.accounts.create(params={"type": "express"})
    assert account.id.startswith("acct_")
    counted, by_route = _counted(control)
    count, limited = by_route[("POST", "/v1/accounts")]
    assert limited >= 2 and count == limited + 2  # every 429 answered, then two accounts made
    assert counted["rate_limited"] == limited
    assert len(_get(server, "/v1/accounts").json()["data"]) == 2


def test_reset_returns_to_no_limits_and_forgets_the_counts(limits, control, server):
    limits(latency_seconds=0.2, read_per_second=1, write_per_second=1)
    _get(server, "/v1/balance")
    assert _get(server, "/v1/balance").status_code == 429
    control.post("reset")
    assert control.get("limits") == OFF
    assert control.get("requests") == {"total": 0, "rate_limited": 0, "data": []}
    started = time.monotonic()
    assert [_get(server, "/v1/balance").status_code for _ in range(5)] == [200] * 5
    assert time.monotonic() - started < 0.2


def test_the_window_slides_over_one_second_and_refusals_take_no_place():
    now = [0.0]
    limits = Limits(read_per_second=2, write_per_second=1, clock=lambda: now[0])
    results = []
    for at, method in [(0.0, "GET"), (0.5, "GET"), (0.9, "GET"), (0.9, "POST"),
                       (0.95, "DELETE"), (1.0, "GET"), (1.2, "GET"), (1.5, "GET"),
                       (2.0, "POST")]:
        now[0] = at
        results.append(limits.admit(method))
    # 0.9 GET: two in the last second; at 1.0 the first has left; 1.2: 0.5 and 1.0 still in;
    # DELETE is a write; 2.0 POST: the write at 0.9 has left
    assert results == [True, True, False, True, False, True, False, True, True]
    limits.reset()  # back to the start-up settings, windows emptied
    assert limits.settings()["read_per_second"] == 2
    assert limits.admit("GET") and limits.admit("GET") and not limits.admit("GET")


def test_command_line_options():
    with pytest.raises(SystemExit):
        main(["--latency", "99"])
    proc = subprocess.Popen([sys.executable, "-m", "stripe_emulator", "--port", "0",
                             "--latency", "0.05", "--read-rate", "100", "--write-rate", "50"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        assert requests.get(url + "/_emulator/limits", timeout=10).json() == {
            "latency_seconds": 0.05, "read_per_second": 100, "write_per_second": 50,
            "should_retry": False}
        requests.post(url + "/_emulator/limits", json={"read_per_second": None},
                      timeout=10).raise_for_status()
        requests.post(url + "/_emulator/reset", timeout=10).raise_for_status()
        assert requests.get(url + "/_emulator/limits", timeout=10).json()["read_per_second"] == 100
    finally:
        proc.terminate()
        proc.wait(timeout=10)
