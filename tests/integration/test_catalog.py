"""/api/products: vendors create and edit, anyone browses."""
import pytest

from tests.factories import ProductFactory, VendorFactory


@pytest.fixture
def vendor(auth):
    user, headers = auth.user("vendor")
    return VendorFactory(user=user), headers


def test_vendor_creates_a_product(client, vendor):
    v, headers = vendor
    body = {"name": "Mug", "description": "Blue", "price": 1250, "currency": "USD", "stock": 3}
    response = client.post("/api/products", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    product = response.get_json()
    assert product["id"].startswith("prd_")
    assert {k: product[k] for k in ("vendor_id", "name", "description", "price", "currency", "stock", "active")} == {
        "vendor_id": v.id, "name": "Mug", "description": "Blue", "price": 1250,
        "currency": "usd", "stock": 3, "active": True,
    }
    assert client.get(f"/api/products/{product['id']}").get_json() == product


@pytest.mark.parametrize(
    "change, field",
    [
        ({"price": 0}, "price"),
        ({"price": -5}, "price"),
        ({"price": 10.5}, "price"),
        ({"price": "1000"}, "price"),
        ({"price": 100_000_000}, "price"),
        ({"currency": "xyz"}, "currency"),
        ({"currency": "kwd", "price": 1234}, "price"),
        ({"stock": -1}, "stock"),
        ({"name": ""}, "name"),
        ({"vendor_id": "ven_someone_else"}, "vendor_id"),
    ],
    ids=["zero", "negative", "float", "string", "too-large", "currency", "kwd-last-digit",
         "stock", "name", "unknown-field"],
)
def test_product_validation(client, vendor, change, field):
    body = {"name": "Mug", "price": 1000, "currency": "usd", "stock": 1, **change}
    response = client.post("/api/products", json=body, headers=vendor[1])
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]


def test_three_decimal_price_ending_in_zero_is_fine(client, vendor):
    body = {"name": "Dates", "price": 1230, "currency": "kwd", "stock": 1}
    assert client.post("/api/products", json=body, headers=vendor[1]).status_code == 201


def test_a_vendor_user_without_a_profile_cannot_create_products(client, auth):
    headers = auth.headers("vendor")
    response = client.post("/api/products", json={"name": "x", "price": 100, "currency": "usd", "stock": 1}, headers=headers)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "vendor_not_found"


@pytest.mark.parametrize("role, status", [(None, 401), ("shopper", 403), ("admin", 403)])
def test_only_vendors_create_products(client, auth, role, status):
    headers = auth.headers(role) if role else {}
    response = client.post("/api/products", json={"name": "x", "price": 100, "currency": "usd", "stock": 1}, headers=headers)
    assert response.status_code == status


def test_list_is_public_active_only_filterable_and_paginated(client):
    a, b = VendorFactory(), VendorFactory()
    for _ in range(3):
        ProductFactory(vendor=a)
    ProductFactory(vendor=b)
    ProductFactory(vendor=b, active=False)
    everything = client.get("/api/products").get_json()
    assert everything["pagination"]["total_items"] == 4
    assert all(p["active"] for p in everything["data"])
    only_a = client.get(f"/api/products?vendor_id={a.id}&per_page=2&page=2").get_json()
    assert only_a["pagination"] == {"page": 2, "per_page": 2, "total_items": 3, "total_pages": 2}
    assert [p["vendor_id"] for p in only_a["data"]] == [a.id]
    assert client.get("/api/products?per_page=101").status_code == 422


def test_unknown_product_is_404(client):
    response = client.get("/api/products/prd_nope")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "product_not_found"


def test_owner_patches_a_product(client, vendor):
    product = ProductFactory(vendor=vendor[0])
    response = client.patch(f"/api/products/{product.id}", json={"price": 1999, "active": False}, headers=vendor[1])
    assert response.status_code == 200
    assert response.get_json()["price"] == 1999 and response.get_json()["active"] is False
    assert response.get_json()["name"] == product.name


def test_another_vendors_product_patch_is_404(client, auth, vendor):
    other = ProductFactory()
    response = client.patch(f"/api/products/{other.id}", json={"price": 1}, headers=vendor[1])
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "product_not_found"


def test_patch_checks_the_price_against_the_stored_currency(client, vendor):
    product = ProductFactory(vendor=vendor[0], currency="kwd", price=1000)
    response = client.patch(f"/api/products/{product.id}", json={"price": 1001}, headers=vendor[1])
    assert response.status_code == 422 and "price" in response.get_json()["error"]["details"]
    usd = ProductFactory(vendor=vendor[0], price=1001)
    switched = client.patch(f"/api/products/{usd.id}", json={"currency": "kwd"}, headers=vendor[1])
    assert switched.status_code == 422


def test_patch_rejects_unknown_fields(client, vendor):
    product = ProductFactory(vendor=vendor[0])
    response = client.patch(f"/api/products/{product.id}", json={"vendor_id": "ven_x"}, headers=vendor[1])
    assert response.status_code == 422
