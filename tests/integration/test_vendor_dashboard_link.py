"""POST /api/vendors/me/dashboard-link: a Stripe Express Dashboard login link, through the emulator."""
import pytest
import requests

from tests.factories import VendorFactory
from tests.payments_helpers import emu

pytestmark = pytest.mark.needs("emulator")


def link(client, headers):
    return client.post("/api/vendors/me/dashboard-link", headers=headers)


def error_code(response):
    return response.get_json()["error"]["code"]


def test_an_express_vendor_gets_a_link_once_it_has_completed_onboarding(client, auth, emulator):
    _, headers = auth.user("vendor")
    vendor = client.post("/api/vendors", json={"display_name": "Pots", "country": "US"}, headers=headers).get_json()
    refused = link(client, headers)
    assert refused.status_code == 409 and error_code(refused) == "onboarding_incomplete"
    assert set(refused.get_json()["error"]) == {"code", "message", "details"}

    emu(emulator, "POST", f"/_emulator/accounts/{vendor['stripe_account_id']}/onboard")
    made = link(client, headers)
    assert made.status_code == 201, made.get_json()
    url = made.get_json()["url"]
    assert made.get_json() == {"url": url} and url.startswith(f"{emulator.url}/_emulator/express/")
    assert requests.get(url, timeout=10).json()["account"] == vendor["stripe_account_id"]
    assert link(client, headers).get_json()["url"] != url  # single use: a new one each time


def test_an_account_without_the_express_dashboard_is_refused(client, auth, emulator):
    user, headers = auth.user("vendor")
    custom = emu(emulator, "POST", "/v1/accounts", type="custom", country="US",
                 **{"capabilities[transfers][requested]": "true"})
    VendorFactory(user=user, stripe_account_id=custom["id"])
    refused = link(client, headers)
    assert refused.status_code == 409 and error_code(refused) == "dashboard_unavailable"


def test_a_vendor_without_a_stripe_account_or_profile_is_told_so(client, auth, emulator):
    user, headers = auth.user("vendor")
    assert link(client, headers).status_code == 404 and error_code(link(client, headers)) == "vendor_not_found"
    VendorFactory(user=user, stripe_account_id=None, status="onboarding", charges_enabled=False)
    refused = link(client, headers)
    assert refused.status_code == 409 and error_code(refused) == "stripe_account_missing"
    calls = emu(emulator, "GET", "/_emulator/requests")["data"]
    assert not [c for c in calls if c["path"].endswith("/login_links")]  # Stripe was not asked
    assert link(client, auth.headers("shopper")).status_code == 403
    assert client.post("/api/vendors/me/dashboard-link").status_code == 401


def test_stripe_unavailable_is_a_503_in_the_envelope(client, auth, emulator):
    user, headers = auth.user("vendor")
    account = emu(emulator, "POST", "/v1/accounts", type="express", country="US")
    emu(emulator, "POST", f"/_emulator/accounts/{account['id']}/onboard")
    VendorFactory(user=user, stripe_account_id=account["id"])
    emu(emulator, "POST", "/_emulator/faults", path_prefix=f"/v1/accounts/{account['id']}/login_links",
        mode="error", count=1)
    answer = link(client, headers)
    assert answer.status_code == 503 and error_code(answer) == "stripe_unavailable"
    assert link(client, headers).status_code == 201
