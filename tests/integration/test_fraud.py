"""Velocity checks and the checkout rate limit: 429 in the envelope, an audit entry, per shopper and per IP."""
import pytest
from sqlalchemy import select

from marketplace.audit import AuditEntry
from marketplace.extensions import db
from tests.factories import ProductFactory
from tests.payments_helpers import onboarded_vendor, order_for


def _order(client, headers, product, ip="10.0.0.1"):
    return client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]},
                       headers=headers, environ_base={"REMOTE_ADDR": ip})


def _actions():
    return [a for a in db.session.scalars(select(AuditEntry.action))]


def test_too_many_orders_from_one_shopper_are_refused_and_audited(app, client, auth):
    app.config["FRAUD_MAX_ORDERS"] = 2
    shopper, headers = auth.user("shopper")
    product = ProductFactory(price=1000, stock=50)
    assert [_order(client, headers, product, ip=f"10.0.0.{n}").status_code for n in range(3)] == [201, 201, 429]
    refused = _order(client, headers, product, ip="10.0.0.9")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "checkout_refused"
    assert refused.get_json()["error"]["details"] == {"reason": "orders"}
    assert int(refused.headers["Retry-After"]) > 0
    assert "fraud.checkout_refused.orders" in _actions()


def test_orders_from_one_ip_count_across_shoppers(app, client, auth):
    app.config["FRAUD_MAX_ORDERS"] = 2
    product = ProductFactory(price=1000, stock=50)
    first, second = auth.headers("shopper"), auth.headers("shopper")
    assert _order(client, first, product).status_code == 201
    assert _order(client, first, product).status_code == 201
    assert _order(client, second, product).status_code == 429  # same IP, another account
    assert _order(client, second, product, ip="10.0.0.2").status_code == 201


def test_checkout_rate_limit(app, client, auth):
    app.config["RATELIMIT_CHECKOUT"] = "2 per minute"
    headers = auth.headers("shopper")
    product = ProductFactory(price=1000, stock=50)
    statuses = [_order(client, headers, product).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    limited = _order(client, headers, product)
    assert limited.get_json()["error"]["code"] == "too_many_requests" and "Retry-After" in limited.headers


@pytest.mark.needs("emulator")
class TestFailedPayments:
    def test_repeated_declines_refuse_checkout(self, app, client, auth, emulator):
        app.config["FRAUD_MAX_FAILED_PAYMENTS"] = 2
        _, headers = auth.user("shopper")
        vendor = onboarded_vendor(emulator)
        order = order_for(client, headers, [vendor], [1500])
        confirm = f"/api/orders/{order['id']}/confirm"
        declined = [client.post(confirm, json={"payment_method": "pm_card_chargeDeclined"}, headers=headers)
                    for _ in range(2)]
        assert [r.status_code for r in declined] == [402, 402]
        refused = client.post(confirm, json={"payment_method": "pm_card_visa"}, headers=headers)
        assert refused.status_code == 429
        assert refused.get_json()["error"]["details"] == {"reason": "failed_payments"}
        assert "fraud.checkout_refused.failed_payments" in _actions()
