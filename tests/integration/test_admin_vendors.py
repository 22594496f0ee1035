"""GET /api/admin/vendors and PATCH /api/admin/vendors/{id}."""
import pytest

from tests.factories import VendorFactory


def test_admin_lists_vendors_paginated_and_filtered(client, admin):
    vendors = [VendorFactory() for _ in range(3)]
    VendorFactory(suspended=True, status="suspended")
    page = client.get("/api/admin/vendors?per_page=2", headers=admin).get_json()
    assert page["pagination"] == {"page": 1, "per_page": 2, "total_items": 4, "total_pages": 2}
    active = client.get("/api/admin/vendors?status=active&per_page=100", headers=admin).get_json()
    assert {v["id"] for v in active["data"]} == {v.id for v in vendors}
    assert client.get("/api/admin/vendors?status=nope", headers=admin).status_code == 422


@pytest.mark.parametrize("role, status", [(None, 401), ("shopper", 403), ("vendor", 403)])
def test_only_admins(client, auth, role, status):
    vendor = VendorFactory()
    headers = auth.headers(role) if role else {}
    assert client.get("/api/admin/vendors", headers=headers).status_code == status
    assert client.patch(f"/api/admin/vendors/{vendor.id}", json={"status": "suspended"}, headers=headers).status_code == status


def test_fee_override_set_and_cleared(client, admin):
    vendor = VendorFactory()
    url = f"/api/admin/vendors/{vendor.id}"
    set_ = client.patch(url, json={"fee_policy": {"percent_bps": 750, "fixed": 25}}, headers=admin)
    assert set_.status_code == 200 and set_.get_json()["fee_policy"] == {"percent_bps": 750, "fixed": 25}
    untouched = client.patch(url, json={}, headers=admin).get_json()
    assert untouched["fee_policy"] == {"percent_bps": 750, "fixed": 25}
    cleared = client.patch(url, json={"fee_policy": None}, headers=admin).get_json()
    assert cleared["fee_policy"] == {"percent_bps": 1000, "fixed": 0}


@pytest.mark.parametrize(
    "body",
    [{"fee_policy": {"percent_bps": 10001, "fixed": 0}}, {"fee_policy": {"percent_bps": -1, "fixed": 0}},
     {"fee_policy": {"percent_bps": 100, "fixed": -1}}, {"fee_policy": {"percent_bps": 100}},
     {"fee_policy": {"percent_bps": 1.5, "fixed": 0}}, {"status": "restricted"}, {"status": "onboarding"},
     {"name": "x"}],
)
def test_invalid_admin_patches_are_422(client, admin, body):
    vendor = VendorFactory()
    response = client.patch(f"/api/admin/vendors/{vendor.id}", json=body, headers=admin)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "validation_error"


def test_suspend_and_reinstate_follow_the_account(client, admin):
    ready = VendorFactory()
    not_ready = VendorFactory(charges_enabled=False, payouts_enabled=False, details_submitted=False, status="onboarding")
    for vendor, after in ((ready, "active"), (not_ready, "onboarding")):
        url = f"/api/admin/vendors/{vendor.id}"
        assert client.patch(url, json={"status": "suspended"}, headers=admin).get_json()["status"] == "suspended"
        assert client.patch(url, json={"status": "suspended"}, headers=admin).get_json()["status"] == "suspended"
        assert client.patch(url, json={"status": "active"}, headers=admin).get_json()["status"] == after
        assert client.patch(url, json={"status": "active"}, headers=admin).get_json()["status"] == after


def test_unknown_vendor_is_404(client, admin):
    response = client.patch("/api/admin/vendors/ven_nope", json={"status": "suspended"}, headers=admin)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "vendor_not_found"
