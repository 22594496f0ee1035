"""Vendor onboarding end to end: our API, the real stripe package, the emulator over HTTP."""
import time

import pytest
import requests
from sqlalchemy import func, select

from marketplace import stripe_gateway
from marketplace.extensions import db
from marketplace.vendors import service
from marketplace.vendors.models import Vendor
from tests.factories import ProductFactory
from tests.payments_helpers import CARD_ONLY

pytestmark = pytest.mark.needs("emulator")

KEY = {"Authorization": "Bearer sk_test_emulator"}


def emu_post(emulator, path, **body):
    response = requests.post(f"{emulator.url}{path}", json=body, headers=KEY, timeout=10)
    response.raise_for_status()
    return response.json()


def emu_get(emulator, path, account=None, **params):
    headers = {**KEY, **({"Stripe-Account": account} if account else {})}
    response = requests.get(f"{emulator.url}{path}", params=params, headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()


def create_vendor(client, headers, **body):
    return client.post("/api/vendors", json={"display_name": "Ann's Pottery", "country": "us", **body}, headers=headers)


def test_onboarding_end_to_end(client, auth, emulator):
    user, headers = auth.user("vendor")
    created = create_vendor(client, headers)
    assert created.status_code == 201, created.get_json()
    vendor = created.get_json()
    assert vendor["stripe_account_id"].startswith("acct_") and vendor["country"] == "US"
    assert vendor["status"] == "onboarding" and not vendor["charges_enabled"]
    assert vendor["requirements_due"] and vendor["fee_policy"] == {"percent_bps": 1000, "fixed": 0}
    assert list(vendor)[:9] == ["id", "display_name", "country", "stripe_account_id", "status", "charges_enabled", "payouts_enabled", "requirements_due", "fee_policy"]

    account = stripe_gateway.retrieve_account(vendor["stripe_account_id"])
    assert account["type"] == "express" and account["email"] == user.email
    assert account["settings"]["payouts"]["schedule"]["interval"] == "manual"
    assert account["metadata"] == {"vendor_id": vendor["id"]}
    assert set(account["capabilities"]) == {"card_payments", "transfers"}

    again = create_vendor(client, headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "vendor_exists"

    link = client.post("/api/vendors/me/onboarding-link", headers=headers)
    assert link.status_code == 201
    assert link.get_json()["url"].startswith(emulator.url) and link.get_json()["expires_at"].endswith("Z")

    emu_post(emulator, f"/_emulator/accounts/{vendor['stripe_account_id']}/onboard")
    assert client.get("/api/vendors/me", headers=headers).get_json()["status"] == "onboarding"
    events = emu_get(emulator, "/v1/events", account=vendor["stripe_account_id"], type="account.updated")["data"]
    payload = events[0]["data"]["object"]
    assert payload["id"] == vendor["stripe_account_id"]
    service.apply_account_update(payload)

    me = client.get("/api/vendors/me", headers=headers).get_json()
    assert me["status"] == "active" and me["charges_enabled"] and me["payouts_enabled"]
    assert me["requirements_due"] == []
    product = ProductFactory(vendor_id=me["id"], vendor=None)
    shopper = auth.headers("shopper")
    ordered = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=shopper)
    assert ordered.status_code == 201


@pytest.fixture
def onboarded(client, auth, emulator):
    user, headers = auth.user("vendor")
    vendor = create_vendor(client, headers).get_json()
    stale = stripe_gateway.retrieve_account(vendor["stripe_account_id"])
    emu_post(emulator, f"/_emulator/accounts/{vendor['stripe_account_id']}/onboard")
    service.apply_account_update({"id": vendor["stripe_account_id"]})
    return vendor, headers, stale


def test_updates_are_idempotent_and_a_stale_event_never_rolls_back(client, onboarded):
    vendor, headers, stale = onboarded
    assert stale["charges_enabled"] is False
    service.apply_account_update(stale)  # delivered late: re-fetched, so it changes nothing
    service.apply_account_update(stale)
    assert client.get("/api/vendors/me", headers=headers).get_json()["status"] == "active"


def test_an_unknown_account_is_ignored(app):
    assert service.apply_account_update({"id": "acct_unknown"}, refetch=False) is None


def test_suspension_is_never_lifted_by_an_account_update(client, auth, onboarded):
    vendor, headers, _ = onboarded
    admin = auth.headers("admin")
    product = ProductFactory(vendor_id=vendor["id"], vendor=None)
    suspended = client.patch(f"/api/admin/vendors/{vendor['id']}", json={"status": "suspended"}, headers=admin)
    assert suspended.status_code == 200 and suspended.get_json()["status"] == "suspended"
    service.apply_account_update({"id": vendor["stripe_account_id"]})
    assert client.get("/api/vendors/me", headers=headers).get_json()["status"] == "suspended"
    shopper = auth.headers("shopper")
    refused = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=shopper)
    assert refused.status_code == 422 and "items" in refused.get_json()["error"]["details"]
    reinstated = client.patch(f"/api/admin/vendors/{vendor['id']}", json={"status": "active"}, headers=admin)
    assert reinstated.get_json()["status"] == "active"
    again = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=shopper)
    assert again.status_code == 201


def accounts_at_stripe(emulator):
    return emu_get(emulator, "/v1/accounts", limit=100)["data"]


def test_stripe_outage_leaves_a_retryable_row_and_never_a_duplicate(client, auth, emulator):
    _, headers = auth.user("vendor")
    emu_post(emulator, "/_emulator/faults", path_prefix="/v1/accounts", mode="error", count=1, status=500)
    failed = create_vendor(client, headers)
    assert failed.status_code == 503 and failed.get_json()["error"]["code"] == "stripe_unavailable"
    assert "sk_test" not in failed.get_data(as_text=True)
    me = client.get("/api/vendors/me", headers=headers).get_json()
    assert me["stripe_account_id"] is None and me["status"] == "onboarding"
    retried = create_vendor(client, headers, display_name="Ann's Pots")
    assert retried.status_code == 201 and retried.get_json()["id"] == me["id"]
    assert retried.get_json()["display_name"] == "Ann's Pots"
    assert [a["id"] for a in accounts_at_stripe(emulator)] == [retried.get_json()["stripe_account_id"]]


def test_a_timeout_after_stripe_created_the_account_resumes_the_same_account(client, auth, emulator, app):
    _, headers = auth.user("vendor")
    app.config["STRIPE_TIMEOUT_SECONDS"] = 1
    app.extensions.pop("stripe_client", None)
    emu_post(emulator, "/_emulator/faults", path_prefix="/v1/accounts", mode="delay", seconds=1.5, count=1)
    failed = create_vendor(client, headers)
    assert failed.status_code == 503
    deadline = time.monotonic() + 5  # the emulator finishes the slow request and creates the account
    while not accounts_at_stripe(emulator) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(accounts_at_stripe(emulator)) == 1
    link = client.post("/api/vendors/me/onboarding-link", headers=headers)  # resumes, same key
    assert link.status_code == 201
    [account] = accounts_at_stripe(emulator)
    vendor = db.session.scalar(select(Vendor))
    assert vendor.stripe_account_id == account["id"] and account["metadata"]["vendor_id"] == vendor.id


def test_rate_limit_is_429_with_retry_after(client, auth, emulator):
    _, headers = auth.user("vendor")
    emu_post(emulator, "/_emulator/faults", path_prefix="/v1/accounts", mode="rate_limit", count=1)
    response = create_vendor(client, headers)
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "rate_limited"


def test_an_account_made_by_a_lost_request_is_linked_by_its_metadata(client, auth, app):
    user, headers = auth.user("vendor")
    vendor = Vendor(user_id=user.id, display_name="V", country="US", email=user.email)
    db.session.add(vendor)
    db.session.commit()
    account = stripe_gateway.create_express_account(vendor.id, "US", user.email, service.account_idempotency_key(vendor))
    linked = service.apply_account_update(account)
    assert linked.id == vendor.id and linked.stripe_account_id == account["id"]
    assert db.session.scalar(select(func.count()).select_from(Vendor)) == 1


def test_onboarding_link_without_a_profile_is_404(client, auth):
    response = client.post("/api/vendors/me/onboarding-link", headers=auth.headers("vendor"))
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "vendor_not_found"


@pytest.mark.parametrize("role, status", [(None, 401), ("shopper", 403), ("admin", 403)])
def test_only_vendor_users_become_vendors(client, auth, role, status):
    headers = auth.headers(role) if role else {}
    assert create_vendor(client, headers).status_code == status


@pytest.mark.parametrize("body", [{"country": "USA"}, {"country": "1x"}, {"email": "nope"}, {"display_name": ""}, {"stripe_account_id": "acct_x"}])
def test_vendor_body_validation(client, auth, body):
    response = create_vendor(client, auth.headers("vendor"), **body)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "validation_error"


def _intent(emulator, confirm=False):
    data = {"amount": 1000, "currency": "usd", **CARD_ONLY}
    if confirm:
        data.update(payment_method="pm_card_visa", confirm="true")
    response = requests.post(f"{emulator.url}/v1/payment_intents", data=data, headers=KEY, timeout=10)
    response.raise_for_status()
    return response.json()


def _order_with_intent(client, auth, emulator, confirm):
    from marketplace.orders.models import Order

    shopper = auth.headers("shopper")
    product = ProductFactory(stock=3)
    created = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=shopper).get_json()
    intent = _intent(emulator, confirm)
    db.session.get(Order, created["id"]).payment_intent_id = intent["id"]
    db.session.commit()
    return created, intent, shopper, product


def test_cancel_cancels_the_payment_intent(client, auth, emulator):
    created, intent, shopper, product = _order_with_intent(client, auth, emulator, confirm=False)
    response = client.post(f"/api/orders/{created['id']}/cancel", headers=shopper)
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    assert response.get_json()["payment"]["payment_intent_id"] == intent["id"]
    assert emu_get(emulator, f"/v1/payment_intents/{intent['id']}")["status"] == "canceled"
    db.session.expire_all()
    assert db.session.get(type(product), product.id).stock == 3


def test_an_order_whose_payment_succeeded_is_not_canceled(client, auth, emulator):
    created, intent, shopper, product = _order_with_intent(client, auth, emulator, confirm=True)
    assert intent["status"] == "succeeded"
    response = client.post(f"/api/orders/{created['id']}/cancel", headers=shopper)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "payment_not_cancelable"
    assert client.get(f"/api/orders/{created['id']}", headers=shopper).get_json()["status"] == "pending_payment"
    db.session.expire_all()
    assert db.session.get(type(product), product.id).stock == 2


def test_a_definite_rejection_by_stripe_leaves_no_row(client, auth, monkeypatch):
    from marketplace.errors import ValidationFailed

    def reject(*args, **kwargs):
        raise ValidationFailed(details={"country": ["Rejected by the payment provider (invalid)."]})

    _, headers = auth.user("vendor")
    monkeypatch.setattr(stripe_gateway, "create_express_account", reject)
    response = create_vendor(client, headers, country="KP")
    assert response.status_code == 422 and "country" in response.get_json()["error"]["details"]
    assert db.session.scalar(select(func.count()).select_from(Vendor)) == 0
    monkeypatch.undo()
    assert create_vendor(client, headers, country="US").status_code == 201
