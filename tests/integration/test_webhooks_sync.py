"""`flask stripe sync-events`: backfill from /v1/events, processing only what was missed."""
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import func, select

from marketplace import stripe_gateway
from marketplace.extensions import db
from marketplace.vendors.models import Vendor
from marketplace.webhooks.cli import stripe_cli
from marketplace.webhooks.models import WebhookEvent
from tests.webhook_helpers import deliver

pytestmark = pytest.mark.needs("emulator")

KEY = {"Authorization": "Bearer sk_test_emulator"}


def since(**delta) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def stored_ids() -> set[str]:
    db.session.rollback()
    return set(db.session.scalars(select(WebhookEvent.stripe_event_id)))


def onboarded_vendor(client, auth, emulator) -> Vendor:
    _, headers = auth.user("vendor")
    vendor = client.post("/api/vendors", json={"display_name": "Kiln", "country": "US"}, headers=headers).get_json()
    requests.post(f"{emulator.url}/_emulator/accounts/{vendor['stripe_account_id']}/onboard",
                  json={}, timeout=10).raise_for_status()
    return db.session.get(Vendor, vendor["id"])


def test_sync_stores_and_processes_only_missed_events(app, client, auth, emulator):
    vendor = onboarded_vendor(client, auth, emulator)
    account = vendor.stripe_account_id
    assert vendor.status == "onboarding"  # account.updated was never delivered
    connected = list(stripe_gateway.list_events(0, account))
    platform = list(stripe_gateway.list_events(0))
    # onboarding: each capability became active, then the account was updated
    assert sorted(e["type"] for e in connected) == ["account.updated", "capability.updated", "capability.updated"]
    assert {e["account"] for e in connected} == {account}
    delivered = platform[0] if platform else None
    if delivered:  # one platform event did arrive by webhook before the outage
        assert deliver(client, delivered).status_code == 200

    runner = app.test_cli_runner()
    result = runner.invoke(stripe_cli, ["sync-events", "--since", since(hours=1)])
    assert result.exit_code == 0, result.output
    assert f"{account}: 3 event(s) listed, 3 missed and queued" in result.output
    missed = len(platform) + 3 - (1 if delivered else 0)
    assert f"{missed} missed event(s) stored and queued" in result.output
    assert stored_ids() == {e["id"] for e in [*platform, *connected]}
    updated = next(e for e in connected if e["type"] == "account.updated")
    row = db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == updated["id"]))
    assert (row.source, row.account, row.status) == ("sync", account, "processed")
    assert db.session.get(Vendor, vendor.id).status == "active"

    again = runner.invoke(stripe_cli, ["sync-events", "--since", since(hours=1)])
    assert again.exit_code == 0 and "0 missed event(s)" in again.output
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == len(platform) + 3


def test_sync_respects_since(app, client, auth, emulator):
    onboarded_vendor(client, auth, emulator)
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    result = app.test_cli_runner().invoke(stripe_cli, ["sync-events", "--since", future])
    assert result.exit_code == 0 and "0 event(s) listed" in result.output.splitlines()[-1]
    assert stored_ids() == set()


def test_sync_rejects_a_bad_timestamp(app):
    result = app.test_cli_runner().invoke(stripe_cli, ["sync-events", "--since", "yesterday"])
    assert result.exit_code != 0 and "ISO 8601" in result.output


def test_webhook_endpoints_subscribe_to_the_handled_events_only(app, emulator):
    """Stripe delivers only what an endpoint subscribes to: the app's endpoints ask for the
    types it handles, so no delivery, row or job is spent on the others."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from marketplace.webhooks import handlers
    from marketplace.webhooks.service import subscribe

    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/webhooks/stripe"
    try:
        made = subscribe(url)
        assert [(e["role"], e["created"]) for e in made] == [("platform", True), ("connect", True)]
        assert all(e["secret"].startswith("whsec_") for e in made)
        endpoints = {e["id"]: e for e in stripe_gateway.list_webhook_endpoints()}
        assert set(endpoints) == {e["id"] for e in made}
        for endpoint in endpoints.values():
            assert sorted(endpoint["enabled_events"]) == sorted(handlers.HANDLERS)
            assert endpoint["api_version"] == stripe_gateway.API_VERSION
        # Again (a deploy, a new handler): the same endpoints are updated, nothing is made twice.
        output = app.test_cli_runner().invoke(args=["stripe", "webhook-endpoints", url]).output
        assert output.splitlines() == [f"{e['role']}: {e['id']} updated (its secret is unchanged)" for e in made]
        assert "whsec_" not in output
        assert len(stripe_gateway.list_webhook_endpoints()) == 2

        intent = stripe_gateway.create_payment_intent(
            {"amount": 1000, "currency": "usd", "automatic_payment_methods": {"enabled": True,
                                                                              "allow_redirects": "never"}},
            "subscribe-test-pi")
        stripe_gateway.confirm_payment_intent(intent["id"], "pm_card_visa", "subscribe-test-confirm")
        requests.post(f"{emulator.url}/_emulator/settle", json={}, timeout=10).raise_for_status()
        requests.post(f"{emulator.url}/_emulator/webhooks/flush", json={}, timeout=10).raise_for_status()
        sent = [e["type"] for e in requests.get(f"{emulator.url}/v1/events", headers=KEY, timeout=10).json()["data"]]
        assert {"payment_intent.created", "charge.succeeded", "payment_intent.succeeded"} <= set(sent)
        types = [e["type"] for e in received]
        assert "payment_intent.succeeded" in types and "charge.updated" in types
        assert set(types) <= set(handlers.HANDLERS)  # payment_intent.created, charge.succeeded: not sent
    finally:
        server.shutdown()
