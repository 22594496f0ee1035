"""/api/orders: pricing from the catalog, splits, validation, stock, access and cancel."""
import pytest
from sqlalchemy import select

from marketplace.catalog.models import Product
from marketplace.extensions import db
from marketplace.orders import service
from marketplace.orders.models import Order
from tests.factories import ProductFactory, VendorFactory


def assert_invariants(order):
    assert sum(i["amount"] for i in order["items"]) == order["subtotal"] == order["total"]
    assert sum(s["subtotal"] for s in order["splits"]) == order["total"]
    assert sum(s["platform_fee"] for s in order["splits"]) == order["platform_fee"]
    for split in order["splits"]:
        assert split["platform_fee"] + split["vendor_net"] == split["subtotal"]
        assert 0 <= split["platform_fee"] <= split["subtotal"]
    for item in order["items"]:
        assert item["amount"] == item["unit_price"] * item["quantity"]


def stock_of(product_id):
    db.session.expire_all()
    return db.session.scalar(select(Product.stock).where(Product.id == product_id))


@pytest.fixture
def shopper(auth):
    return auth.user("shopper")


def order(client, headers, *lines):
    return client.post("/api/orders", json={"items": [{"product_id": p, "quantity": q} for p, q in lines]}, headers=headers)


def test_one_vendor_order_is_a_destination_charge(client, shopper):
    product = ProductFactory(price=1005, stock=5)
    response = order(client, shopper[1], (product.id, 2))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "pending_payment" and body["charge_type"] == "destination"
    assert body["currency"] == "usd" and body["total"] == 2010 and body["platform_fee"] == 201
    assert body["payment"] is None and body["created_at"].endswith("Z")
    assert list(body) == ["id", "status", "currency", "subtotal", "total", "platform_fee", "charge_type", "items", "splits", "payment", "subscription_id", "stripe_invoice_id", "created_at"]
    assert body["subscription_id"] is None and body["stripe_invoice_id"] is None  # a cart, not an invoice
    [item] = body["items"]
    assert item == {"id": item["id"], "product_id": product.id, "vendor_id": product.vendor_id, "name": product.name, "unit_price": 1005, "quantity": 2, "amount": 2010}
    [split] = body["splits"]
    assert split["vendor_id"] == product.vendor_id and split["status"] == "pending"
    assert (split["subtotal"], split["platform_fee"], split["vendor_net"], split["refunded"]) == (2010, 201, 1809, 0)
    assert split["stripe_transfer_id"] is None and split["fee_policy"] == {"percent_bps": 1000, "fixed": 0}
    assert_invariants(body)
    assert stock_of(product.id) == 3


def test_several_vendors_make_separate_transfers_with_each_vendors_policy(client, shopper):
    a = VendorFactory(fee_percent_bps=500, fee_fixed=30)
    b = VendorFactory()
    pa, pb, pb2 = ProductFactory(vendor=a, price=999), ProductFactory(vendor=b, price=2500), ProductFactory(vendor=b, price=100)
    body = order(client, shopper[1], (pa.id, 3), (pb.id, 1), (pb2.id, 4)).get_json()
    assert body["charge_type"] == "separate_transfers"
    assert [s["vendor_id"] for s in body["splits"]] == [a.id, b.id]
    split_a, split_b = body["splits"]
    assert split_a["subtotal"] == 2997 and split_a["platform_fee"] == 150 + 30  # round_half_up(149.85) + 30
    assert split_b["subtotal"] == 2900 and split_b["platform_fee"] == 290
    assert body["total"] == 5897
    assert_invariants(body)


def test_duplicate_lines_are_merged(client, shopper):
    product = ProductFactory(stock=10)
    body = order(client, shopper[1], (product.id, 2), (product.id, 3)).get_json()
    assert [(i["product_id"], i["quantity"]) for i in body["items"]] == [(product.id, 5)]
    assert stock_of(product.id) == 5


def test_not_enough_stock_is_409_and_reserves_nothing(client, shopper):
    plenty, scarce = ProductFactory(stock=10), ProductFactory(stock=1)
    response = order(client, shopper[1], (plenty.id, 2), (scarce.id, 2))
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "insufficient_stock"
    assert (stock_of(plenty.id), stock_of(scarce.id)) == (10, 1)
    assert db.session.scalar(select(Order)) is None


def _bad_bodies():
    return {
        "unknown-product": (lambda p: {"items": [{"product_id": "prd_unknown", "quantity": 1}]}, "items"),
        "inactive-product": (lambda p: {"items": [{"product_id": p["inactive"], "quantity": 1}]}, "items"),
        "vendor-not-onboarded": (lambda p: {"items": [{"product_id": p["onboarding"], "quantity": 1}]}, "items"),
        "vendor-suspended": (lambda p: {"items": [{"product_id": p["suspended"], "quantity": 1}]}, "items"),
        "mixed-currency": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1}, {"product_id": p["eur"], "quantity": 1}]}, "items"),
        "price-in-line": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1, "price": 1}]}, "items"),
        "unit-price-in-line": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1, "unit_price": 1}]}, "items"),
        "total-in-body": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1}], "total": 1}, "total"),
        "amount-in-body": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1}], "amount": 1}, "amount"),
        "unknown-field": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1}], "coupon": "x"}, "coupon"),
        "quantity-zero": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 0}]}, "items"),
        "quantity-1001": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1001}]}, "items"),
        "quantity-float": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1.5}]}, "items"),
        "merged-quantity-1001": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 600}, {"product_id": p["usd"], "quantity": 401}]}, "items"),
        "no-lines": (lambda p: {"items": []}, "items"),
        "101-lines": (lambda p: {"items": [{"product_id": p["usd"], "quantity": 1}] * 101}, "items"),
        "missing-items": (lambda p: {}, "items"),
    }


@pytest.fixture
def catalog():
    suspended = VendorFactory(suspended=True, status="suspended")
    onboarding = VendorFactory(charges_enabled=False, payouts_enabled=False, details_submitted=False, status="onboarding")
    return {
        "usd": ProductFactory(price=1000).id,
        "eur": ProductFactory(price=1000, currency="eur").id,
        "inactive": ProductFactory(active=False).id,
        "suspended": ProductFactory(vendor=suspended).id,
        "onboarding": ProductFactory(vendor=onboarding).id,
    }


@pytest.mark.parametrize("case", list(_bad_bodies()))
def test_validation_errors_are_422(client, shopper, catalog, case):
    make, field = _bad_bodies()[case]
    response = client.post("/api/orders", json=make(catalog), headers=shopper[1])
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]
    assert set(error) == {"code", "message", "details"}
    assert db.session.scalar(select(Order)) is None
    assert stock_of(catalog["usd"]) == 100


@pytest.mark.parametrize(
    "price, quantity, currency, code",
    [(49, 1, "usd", "amount_too_small"), (29, 1, "gbp", "amount_too_small"), (49, 1, "jpy", "amount_too_small"),
     (100_000, 1000, "usd", "amount_too_large")],
)
def test_totals_outside_stripes_limits_are_422(client, shopper, price, quantity, currency, code):
    product = ProductFactory(price=price, currency=currency, stock=5000)
    response = order(client, shopper[1], (product.id, quantity))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == code and "total" in error["details"]
    assert stock_of(product.id) == 5000


def test_totals_at_the_limits_are_fine(client, shopper):
    assert order(client, shopper[1], (ProductFactory(price=50).id, 1)).status_code == 201
    assert order(client, shopper[1], (ProductFactory(price=30, currency="gbp").id, 1)).status_code == 201
    assert order(client, shopper[1], (ProductFactory(price=99_999_999).id, 1)).status_code == 201


@pytest.mark.parametrize("role, status", [(None, 401), ("vendor", 403), ("admin", 403)])
def test_only_shoppers_order(client, auth, role, status):
    product = ProductFactory()
    headers = auth.headers(role) if role else {}
    assert order(client, headers, (product.id, 1)).status_code == status


def test_read_access(client, auth, shopper):
    created = order(client, shopper[1], (ProductFactory().id, 1)).get_json()
    assert client.get(f"/api/orders/{created['id']}", headers=shopper[1]).get_json() == created
    other = client.get(f"/api/orders/{created['id']}", headers=auth.headers("shopper"))
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "order_not_found"
    assert client.get(f"/api/orders/{created['id']}", headers=auth.headers("admin")).status_code == 200
    assert client.get(f"/api/orders/{created['id']}", headers=auth.headers("vendor")).status_code == 403
    assert client.get("/api/orders/ord_nope", headers=shopper[1]).status_code == 404


def test_lists_and_filters(client, auth, shopper):
    a, b = VendorFactory(), VendorFactory()
    mine = [order(client, shopper[1], (ProductFactory(vendor=a).id, 1)).get_json() for _ in range(2)]
    theirs = order(client, auth.headers("shopper"), (ProductFactory(vendor=b).id, 1)).get_json()
    own = client.get("/api/orders", headers=shopper[1]).get_json()
    assert [o["id"] for o in own["data"]] == [mine[1]["id"], mine[0]["id"]]
    admin = auth.headers("admin")
    assert client.get("/api/orders", headers=admin).get_json()["pagination"]["total_items"] == 3
    by_vendor = client.get(f"/api/orders?vendor_id={b.id}", headers=admin).get_json()
    assert [o["id"] for o in by_vendor["data"]] == [theirs["id"]]
    client.post(f"/api/orders/{mine[0]['id']}/cancel", headers=shopper[1])
    canceled = client.get("/api/orders?status=canceled", headers=admin).get_json()
    assert [o["id"] for o in canceled["data"]] == [mine[0]["id"]]
    future = client.get("/api/orders?from=2999-01-01T00:00:00Z", headers=admin).get_json()
    past = client.get("/api/orders?to=2000-01-01T00:00:00Z", headers=admin).get_json()
    assert future["data"] == past["data"] == []
    assert client.get("/api/orders?status=nope", headers=admin).status_code == 422


def test_cancel_releases_stock_once(client, auth, shopper):
    product = ProductFactory(stock=4)
    created = order(client, shopper[1], (product.id, 3)).get_json()
    assert client.post(f"/api/orders/{created['id']}/cancel", headers=auth.headers("shopper")).status_code == 404
    response = client.post(f"/api/orders/{created['id']}/cancel", headers=shopper[1])
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "canceled" and [s["status"] for s in body["splits"]] == ["canceled"]
    assert_invariants(body)
    assert stock_of(product.id) == 4
    again = client.post(f"/api/orders/{created['id']}/cancel", headers=shopper[1])
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "order_not_cancelable"
    assert stock_of(product.id) == 4


def test_release_stock_is_idempotent(app, client, shopper):
    product = ProductFactory(stock=10)
    created = order(client, shopper[1], (product.id, 4)).get_json()
    row = db.session.get(Order, created["id"])
    assert service.release_stock(row) is True
    assert service.release_stock(row) is False
    assert stock_of(product.id) == 10
    assert db.session.get(Order, created["id"]).stock_released_at is not None


def test_paid_orders_cannot_be_canceled(client, shopper):
    created = order(client, shopper[1], (ProductFactory().id, 1)).get_json()
    db.session.get(Order, created["id"]).status = "paid"
    db.session.commit()
    response = client.post(f"/api/orders/{created['id']}/cancel", headers=shopper[1])
    assert response.status_code == 409


def test_fee_policy_change_leaves_existing_orders_untouched(client, auth, shopper):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price=10_000)
    before = order(client, shopper[1], (product.id, 1)).get_json()
    admin = auth.headers("admin")
    patched = client.patch(f"/api/admin/vendors/{vendor.id}", json={"fee_policy": {"percent_bps": 2500, "fixed": 99}}, headers=admin)
    assert patched.status_code == 200
    assert client.get(f"/api/orders/{before['id']}", headers=shopper[1]).get_json() == before
    after = order(client, shopper[1], (product.id, 1)).get_json()
    assert before["platform_fee"] == 1000 and after["platform_fee"] == 2599
    assert after["splits"][0]["fee_policy"] == {"percent_bps": 2500, "fixed": 99}
    assert client.get(f"/api/orders/{before['id']}", headers=shopper[1]).get_json() == before


def test_vendor_sales_lists_its_splits(client, auth, shopper):
    user, headers = auth.user("vendor")
    vendor = VendorFactory(user=user)
    mine, theirs = ProductFactory(vendor=vendor), ProductFactory()
    created = order(client, shopper[1], (mine.id, 2), (theirs.id, 1)).get_json()
    sales = client.get("/api/vendors/me/sales", headers=headers).get_json()
    assert sales["pagination"]["total_items"] == 1
    [sale] = sales["data"]
    assert sale["order_id"] == created["id"] and sale["vendor_id"] == vendor.id
    assert sale["subtotal"] == 2000 and sale["order_status"] == "pending_payment"
    assert client.get("/api/vendors/me/sales", headers=auth.headers("shopper")).status_code == 403


def test_idempotency_key_replays_the_order_and_reserves_stock_once(client, shopper):
    product = ProductFactory(stock=10)
    headers = {**shopper[1], "Idempotency-Key": "cart-42"}
    body = {"items": [{"product_id": product.id, "quantity": 3}]}
    first = client.post("/api/orders", json=body, headers=headers)
    again = client.post("/api/orders", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert stock_of(product.id) == 7
    other = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=headers)
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"


def test_a_crashed_attempt_is_recovered_not_repeated(app, client, shopper):
    from flask import g

    from marketplace import idempotency
    from marketplace.idempotency import IdempotencyKey

    product = ProductFactory(stock=10)
    key = IdempotencyKey(user_id=shopper[0].id, key="k", request_method="POST", request_path="/api/orders",
                         request_fingerprint="f", locked_at=None)
    db.session.add(key)
    db.session.commit()
    with app.test_request_context():
        g.idempotency_key_id = key.id
        first = service.create_order(shopper[0], [{"product_id": product.id, "quantity": 2}])
        assert idempotency.recovered("order") == first.id
        second = service.create_order(shopper[0], [{"product_id": product.id, "quantity": 2}])
    assert second.id == first.id and stock_of(product.id) == 8
