"""One suite, two Stripes: these tests run against the emulator, or against Stripe's test
mode when `STRIPE_TEST_SECRET_KEY` is set (`make test-stripe`).

Every response is checked against the current API's object shapes (`shapes.py`). A test
that needs what only the emulator has (its controls: the clock, faults, webhook delivery
modes, forced outcomes; or the whole state of a fresh platform account) is marked
`emulator_only` and skipped against Stripe. Everything else goes through `target`, whose
helpers do what each side needs: an onboarded connected account (an Express account
onboarded by a control here; a Custom account with Stripe's test verification data on
Stripe), a charge's asynchronous settlement (forced here, awaited there), events read back
from `/v1/events` on both.
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe

from stripe_emulator import start_server

from .shapes import ShapeChecker

SHAPES = ShapeChecker()
REAL_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY")
# Stripe itself unless told otherwise (e.g. an emulator started apart, to try this mode here).
REAL_BASE = os.environ.get("STRIPE_TEST_API_BASE") or "https://api.stripe.com"
if REAL_KEY and not REAL_KEY.startswith("sk_test_"):
    raise pytest.UsageError("STRIPE_TEST_SECRET_KEY must be a test-mode key (sk_test_...)")


def pytest_collection_modifyitems(config, items):
    if not REAL_KEY:
        return
    skip = pytest.mark.skip(reason="emulator only: needs the emulator's controls or state")
    for item in items:
        if "emulator_only" in item.keywords and "tests/emulator" in str(item.fspath):
            item.add_marker(skip)


class ValidatingClient(stripe.RequestsClient):
    """The stripe package's requests client, checking every response against the current API."""

    def request(self, method, url, headers, post_data=None):
        content, status, rheaders = super().request(method, url, headers, post_data)
        body = json.loads(content)
        SHAPES.check_response(body)
        assert rheaders.get("Request-Id", "").startswith("req_")
        return content, status, rheaders


class Receiver:
    """A webhook endpoint recording raw bodies and headers; can answer errors first."""

    def __init__(self):
        self.calls = []
        self.fail_next = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                    receiver.calls.append({"body": body, "headers": dict(self.headers),
                                           "failed": failing})
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def ok(self):
        """Bodies of the deliveries answered 2xx."""
        with self.lock:
            return [c for c in self.calls if not c["failed"]]

    def types(self):
        """Event types of the successful deliveries, in arrival order."""
        return [json.loads(c["body"])["type"] for c in self.ok()]


class Control:
    """Calls to the emulator's /_emulator/ controls."""

    def __init__(self, url):
        self.url = url
        self.session = requests.Session()

    def post(self, path, **body):
        resp = self.session.post(self.url + "/_emulator/" + path, json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def get(self, path):
        return self.session.get(self.url + "/_emulator/" + path).json()

    def advance(self, seconds):
        return self.post("clock/advance", seconds=seconds)

    def flush(self):
        return self.post("webhooks/flush")


class EmulatorTarget:
    """The emulator as the Stripe under test."""

    real = False
    key = "sk_test_emulator"

    def __init__(self, server):
        self.server = server
        self.url = server.url
        self.control = Control(server.url)

    def client(self):
        return stripe.StripeClient(
            "sk_test_emulator",
            base_addresses={"api": self.url, "connect": self.url, "files": self.url},
            max_network_retries=0, http_client=ValidatingClient())

    def vendor(self, client, country="US", bank_account_number=None):
        """An onboarded Express account with manual payouts."""
        return make_vendor(client, self.control, bank_account_number, country)

    def settle(self, client, charge_id, account=None):
        """The charge with its balance transaction (asynchronous capture done)."""
        self.control.post("settle")
        return client.v1.charges.retrieve(charge_id, options=_opts(account))

    def later(self):
        """Let Stripe's asynchronous steps (refunds failing, disputes opening) happen."""
        self.control.post("settle")

    def events(self, client, since, account=None):
        """Events created at or after `since` (unix), oldest first."""
        return _events(client, since, account)


class StripeTarget:
    """Stripe's test mode as the Stripe under test (STRIPE_TEST_SECRET_KEY)."""

    real = True
    control = None
    url = REAL_BASE
    key = REAL_KEY

    def client(self):
        bases = {"api": REAL_BASE, "connect": REAL_BASE, "files": REAL_BASE} \
            if REAL_BASE != "https://api.stripe.com" else None
        return stripe.StripeClient(REAL_KEY, max_network_retries=2, base_addresses=bases or {},
                                   http_client=ValidatingClient())

    def vendor(self, client, country="US", bank_account_number=None):
        """A Custom account made usable with Stripe's test verification data (Express
        accounts can only be onboarded by a person in Stripe's hosted flow)."""
        acct = client.v1.accounts.create(params={
            "type": "custom", "country": country, "email": "vendor@example.com",
            "business_type": "individual",
            "capabilities": {"card_payments": {"requested": True},
                             "transfers": {"requested": True}},
            "settings": {"payouts": {"schedule": {"interval": "manual"}}},
            "business_profile": {"mcc": "5734", "url": "https://example.com"},
            "individual": {"first_name": "Jenny", "last_name": "Rosen",
                           "email": "vendor@example.com", "phone": "+15555550100",
                           "dob": {"day": 1, "month": 1, "year": 1901},
                           "ssn_last_4": "0000", "id_number": "000000000",
                           "address": {"line1": "address_full_match", "city": "San Francisco",
                                       "state": "CA", "postal_code": "94111",
                                       "country": country}},
            "tos_acceptance": {"date": int(time.time()), "ip": "127.0.0.1"},
            "external_account": {"object": "bank_account", "country": country,
                                 "currency": "usd", "routing_number": "110000000",
                                 "account_number": bank_account_number or "000123456789"},
        })
        deadline = time.time() + 60
        while time.time() < deadline:
            current = client.v1.accounts.retrieve(acct.id).to_dict()
            if (current.get("capabilities") or {}).get("transfers") == "active":
                return acct.id
            time.sleep(2)
        raise AssertionError("test account %s was not verified in 60 s" % acct.id)

    def settle(self, client, charge_id, account=None):
        deadline = time.time() + 120
        while time.time() < deadline:
            charge = client.v1.charges.retrieve(charge_id, options=_opts(account))
            if charge.balance_transaction:
                return charge
            time.sleep(2)
        raise AssertionError("charge %s did not settle in 120 s" % charge_id)

    def later(self):
        time.sleep(10)

    def events(self, client, since, account=None):
        time.sleep(2)  # events are listed a moment after they happen
        return _events(client, since, account)


def raw(target, method, path, headers=None, **kwargs):
    """A request to the target's API without the stripe package (to see headers)."""
    headers = {"Authorization": "Bearer " + target.key, **(headers or {})}
    return requests.request(method, target.url + path, headers=headers, timeout=30, **kwargs)


def _opts(account=None):
    return {"stripe_account": account} if account else {}


def _events(client, since, account):
    page = client.v1.events.list(params={"created": {"gte": since}, "limit": 100},
                                 options=_opts(account))
    return list(reversed(list(page.auto_paging_iter())))


@pytest.fixture(scope="session")
def receiver():
    rec = Receiver()
    yield rec
    rec.httpd.shutdown()


@pytest.fixture(scope="session")
def server(receiver):
    srv = start_server(host="127.0.0.1", port=0, webhook_url=receiver.url,
                       webhook_secret="whsec_test_secret", available_after_days=2,
                       webhook_backoff=0.02)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def target(request):
    if REAL_KEY:
        return StripeTarget()
    return EmulatorTarget(request.getfixturevalue("server"))


@pytest.fixture
def emu(request, target):
    """A fresh emulator state (and an empty receiver) for each test (emulator only)."""
    if target.real:
        pytest.skip("emulator only")
    server, receiver = target.server, request.getfixturevalue("receiver")
    server.emulator.wait_idle(5)
    server.reset()
    with receiver.lock:
        receiver.calls.clear()
        receiver.fail_next = 0
    return server.emulator


@pytest.fixture
def client(request, target):
    """A StripeClient on the target whose responses are checked against the current API."""
    from . import helpers

    if not target.real:
        request.getfixturevalue("emu")
    helpers.TARGET = target
    return target.client()


@pytest.fixture
def control(target, emu):
    return target.control


@pytest.fixture
def vendor(client, target):
    """An onboarded connected account with manual payouts."""
    return target.vendor(client)


def make_vendor(client, control, bank_account_number=None, country="US"):
    """Create and onboard an express account on the emulator."""
    acct = client.v1.accounts.create(params={
        "type": "express", "country": country, "email": "vendor@example.com",
        "capabilities": {"card_payments": {"requested": True},
                         "transfers": {"requested": True}},
        "settings": {"payouts": {"schedule": {"interval": "manual"}}},
    })
    body = {"bank_account_number": bank_account_number} if bank_account_number else {}
    control.post("accounts/%s/onboard" % acct.id, **body)
    return acct.id
