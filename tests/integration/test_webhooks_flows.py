"""Real signed deliveries from the emulator over HTTP: duplicated and reordered, same end state."""
import pytest
import requests
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.vendors.models import Vendor
from marketplace.webhooks.models import WebhookEvent
from tests.webhook_flows import chaos, hooked_app, hooked_emulator, served_switch, settle  # noqa: F401


@pytest.fixture
def app(hooked_app):
    return hooked_app


def assert_every_event_done() -> None:
    db.session.rollback()
    open_rows = db.session.execute(
        select(WebhookEvent.type, WebhookEvent.status, WebhookEvent.last_error)
        .where(WebhookEvent.status.in_(("received", "failed")))
    ).all()
    assert open_rows == []
    counts = select(func.count(WebhookEvent.id), func.count(func.distinct(WebhookEvent.stripe_event_id)))
    total, distinct = db.session.execute(counts).one()
    assert total == distinct  # stored once each, whatever the number of deliveries


def onboard(client, auth, emulator) -> str:
    """Create a vendor through the API and finish onboarding at 'Stripe'; returns its id."""
    _, headers = auth.user("vendor")
    vendor = client.post("/api/vendors", json={"display_name": "Loom", "country": "US"}, headers=headers).get_json()
    requests.post(f"{emulator.url}/_emulator/accounts/{vendor['stripe_account_id']}/onboard",
                  json={}, timeout=10).raise_for_status()
    return vendor["id"]


def vendor_state(vendor_id: str) -> tuple:
    db.session.rollback()
    vendor = db.session.get(Vendor, vendor_id)
    return vendor.status, vendor.charges_enabled, vendor.payouts_enabled, tuple(vendor.requirements_due)


@pytest.mark.parametrize("mode", ["duplicate", "shuffle"])
def test_vendor_onboarding_by_account_updated(app, client, auth, hooked_emulator, served_switch, mode):
    in_order = onboard(client, auth, hooked_emulator)
    settle(hooked_emulator)
    assert vendor_state(in_order) == ("active", True, True, ())

    accounts = lambda: list(db.session.scalars(select(Vendor.stripe_account_id)))  # noqa: E731
    chaotic = chaos(hooked_emulator, served_switch[1], mode, lambda: onboard(client, auth, hooked_emulator), accounts)
    assert vendor_state(chaotic) == vendor_state(in_order)
    assert_every_event_done()
    row = db.session.scalar(select(WebhookEvent).where(
        WebhookEvent.type == "account.updated",
        WebhookEvent.account == db.session.get(Vendor, chaotic).stripe_account_id))
    assert row.status == "processed"
