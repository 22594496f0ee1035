"""Inputs the contract fuzzing found answered with a 500, now validation errors or 404s."""
import pytest

from tests.conftest import Auth


@pytest.mark.parametrize("query", ["from=0001-01-01T00:00:00%2B03:00", "to=9999-12-31T23:00:00-05:00"])
@pytest.mark.parametrize("path", ["/api/orders", "/api/payments", "/api/admin/reports/revenue"])
def test_a_time_outside_the_utc_range_is_a_validation_error(client, auth, path, query):
    role = "shopper" if path == "/api/payments" else "admin"
    response = client.get(f"{path}?{query}", headers=auth.headers(role))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"


def test_a_reconciliation_window_outside_the_utc_range_is_a_validation_error(stripe_app):
    client, auth = stripe_app.test_client(), Auth(stripe_app.test_client())
    body = {"from": "0001-01-01T00:00:00+03:00", "to": "0001-01-01T05:00:00+03:00"}
    response = client.post("/api/admin/reconciliation-runs", json=body, headers=auth.headers("admin"))
    assert response.status_code == 422 and "from" in response.get_json()["error"]["details"]


def test_early_years_are_zero_padded(stripe_app):
    client, auth = stripe_app.test_client(), Auth(stripe_app.test_client())
    body = {"from": "0059-01-03T00:21:03+03:00", "to": "0059-01-03T02:21:03+03:00"}
    response = client.post("/api/admin/reconciliation-runs", json=body, headers=auth.headers("admin"))
    assert response.status_code == 202
    assert (response.get_json()["from"], response.get_json()["to"]) == ("0059-01-02T21:21:03Z", "0059-01-02T23:21:03Z")


@pytest.mark.parametrize("body", [
    {"items": [{"product_id": "prd_\x00", "quantity": 1}]},
    {"items": [{"product_id\x00": "x", "quantity": 1}]},
])
def test_a_nul_character_in_a_body_is_a_validation_error(client, auth, body):
    response = client.post("/api/orders", json=body, headers=auth.headers("shopper"))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and "items" in error["details"]


def test_a_nul_character_in_a_query_is_a_validation_error(client):
    response = client.get("/api/products?vendor_id=ven_%00")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"vendor_id": ["Must not contain a NUL character."]}


@pytest.mark.parametrize("path", ["/api/products/prd_%00", "/api/orders/%00/cancel"])
def test_a_nul_character_in_a_path_parameter_is_a_404(client, auth, path):
    method = client.get if path.startswith("/api/products") else client.post
    response = method(path, headers=auth.headers("shopper"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
