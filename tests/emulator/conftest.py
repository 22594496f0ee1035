"""Fixtures for the emulator's tests: one server per session, reset before each test."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe

from stripe_emulator import start_server

from .openapi import Validator

VALIDATOR = Validator()


class ValidatingClient(stripe.RequestsClient):
    """The stripe package's requests client, checking every response against the spec."""

    def request(self, method, url, headers, post_data=None):
        content, status, rheaders = super().request(method, url, headers, post_data)
        body = json.loads(content)
        VALIDATOR.validate_response(body)
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


@pytest.fixture
def emu(server, receiver):
    """A fresh emulator state (and an empty receiver) for each test."""
    server.emulator.webhooks.wait_idle(5)
    server.reset()
    with receiver.lock:
        receiver.calls.clear()
        receiver.fail_next = 0
    return server.emulator


@pytest.fixture
def client(server, emu):
    """A StripeClient against the emulator whose responses are validated."""
    return stripe.StripeClient(
        "sk_test_emulator",
        base_addresses={"api": server.url, "connect": server.url, "files": server.url},
        max_network_retries=0, http_client=ValidatingClient())


class Control:
    """Calls to the /_emulator/ controls."""

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


@pytest.fixture
def control(server, emu):
    return Control(server.url)


@pytest.fixture
def vendor(client, control):
    """An onboarded express account with manual payouts."""
    return make_vendor(client, control)


def make_vendor(client, control, bank_account_number=None, country="US"):
    """Create and onboard an express account."""
    acct = client.v1.accounts.create(params={
        "type": "express", "country": country, "email": "vendor@example.com",
        "capabilities": {"card_payments": {"requested": True},
                         "transfers": {"requested": True}},
        "settings": {"payouts": {"schedule": {"interval": "manual"}}},
    })
    body = {"bank_account_number": bank_account_number} if bank_account_number else {}
    control.post("accounts/%s/onboard" % acct.id, **body)
    return acct.id
