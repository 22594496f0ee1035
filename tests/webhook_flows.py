"""The emulator delivering real signed webhooks over HTTP to a served test app.

One emulator per run whose webhook URL is a served switch; each test points the switch at
its own app. `settle()` waits until deliveries, retries and (with Redis) RQ jobs are done.
`chaos()` runs a scenario with deliveries held, then sends every event shuffled or
duplicated, then once more in a random order (up to three deliveries of each event).
"""
from __future__ import annotations

import json
import random
import time

import pytest
import requests
from rq import SimpleWorker

from marketplace import queue
from marketplace.demo.runtime import ServedApp
from marketplace.extensions import db
from tests.conftest import _assert_ledger_balanced, _clean, make_app
from tests.webhook_helpers import PATH, SECRET, signed

KEY = {"Authorization": "Bearer sk_test_emulator"}


class Switch:
    """A WSGI app forwarding to whichever app the current test set."""

    def __init__(self):
        self.target = None

    def __call__(self, environ, start_response):
        if self.target is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no app"]
        return self.target(environ, start_response)


@pytest.fixture(scope="session")
def served_switch():
    switch = Switch()
    served = ServedApp(switch).start()
    yield switch, served.url
    served.stop()


@pytest.fixture(scope="session")
def hooked_emulator(served_switch):
    """An emulator that delivers every event to the served switch, signed with the app's secret."""
    from stripe_emulator import start_server

    server = start_server(host="127.0.0.1", port=0, webhook_url=served_switch[1] + PATH,
                          webhook_secret=SECRET, webhook_attempts=8, webhook_backoff=0.05)
    yield server
    server.stop()


@pytest.fixture(params=["inline", "rq"])
def hooked_app(request, migrated, hooked_emulator, served_switch):
    """An app on the hooked emulator; jobs inline, or on RQ when TEST_REDIS_URL is set."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "rq" else None
    if redis_url:
        from redis import Redis

        Redis.from_url(redis_url).flushdb()
    requests.post(f"{hooked_emulator.url}/_emulator/reset", timeout=10).raise_for_status()
    app = make_app(migrated, STRIPE_API_BASE=hooked_emulator.url, REDIS_URL=redis_url)
    served_switch[0].target = app
    with app.app_context():
        yield app
        settle(hooked_emulator)
        served_switch[0].target = None
        _assert_ledger_balanced()
        db.session.remove()
        _clean(db.engine)
        db.engine.dispose()


def settle(emulator, timeout: float = 20) -> None:
    """Wait until Stripe's own later work (charges settling, ...) is done, no delivery is
    pending and (with Redis) every queued job has run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert emulator.emulator.wait_idle(timeout), "Stripe's work or its deliveries did not finish"
        if queue.is_inline() or not _drain():
            db.session.rollback()
            if emulator.emulator.wait_idle(0.01):
                return
    raise AssertionError("the system did not settle")


def _drain() -> int:
    """Run every queued RQ job (and relay the outbox); how many ran."""
    from marketplace import outbox

    outbox.relay()
    rq_queue = queue.get_queue()
    count = rq_queue.count
    if count:
        SimpleWorker([rq_queue], connection=queue.get_redis()).work(burst=True)
    return count


def all_events(emulator, accounts: list[str]) -> list[dict]:
    """Every event the emulator recorded: the platform's and each connected account's."""
    events = []
    for account in [None, *accounts]:
        headers = {**KEY, **({"Stripe-Account": account} if account else {})}
        params = {"limit": 100}
        while True:
            page = requests.get(f"{emulator.url}/v1/events", params=params, headers=headers, timeout=10).json()
            events.extend(page["data"])
            if not page["has_more"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
    return events


def redeliver(app_url: str, events: list[dict]) -> None:
    """Deliver `events` once more, signed, in the given order."""
    session = requests.Session()
    for event in events:
        body, headers = signed(json.dumps(event, indent=2))
        response = session.post(app_url + PATH, data=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text


def chaos(emulator, app_url: str, mode: str, scenario, accounts) -> object:
    """Run `scenario()` with deliveries held, then deliver in `mode`, then once more shuffled."""
    webhooks = emulator.emulator.webhooks
    webhooks.set_mode("paused")
    try:
        result = scenario()
    finally:
        webhooks.set_mode(mode)
    webhooks.flush(mode=mode)
    settle(emulator)
    events = all_events(emulator, accounts() if callable(accounts) else accounts)
    random.shuffle(events)
    redeliver(app_url, events)
    settle(emulator)
    return result
