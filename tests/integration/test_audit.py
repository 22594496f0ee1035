"""The audit log: privileged and money-moving actions, with actor and request id, in the action's transaction."""
from sqlalchemy import select

from marketplace import audit
from marketplace.audit import AuditEntry
from marketplace.extensions import db
from tests.factories import ProductFactory, VendorFactory


def entries(action=None):
    stmt = select(AuditEntry).order_by(AuditEntry.at)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return list(db.session.scalars(stmt))


def test_order_creation_is_audited_with_actor_and_request_id(client, auth):
    shopper, headers = auth.user("shopper")
    product = ProductFactory(price=1250, stock=5)
    response = client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 2}]},
                           headers={**headers, "X-Request-Id": "req-audit-1"})
    assert response.status_code == 201
    [entry] = entries("order.created")
    assert (entry.actor, entry.object_id, entry.amount, entry.currency, entry.request_id) == (
        shopper.id, response.get_json()["id"], 2500, product.currency, "req-audit-1")


def test_a_rolled_back_action_leaves_no_audit_entry(app):
    audit.record("order.created", "order", "ord_x", amount=1, currency="usd")
    db.session.rollback()
    assert entries() == []


def test_admin_vendor_changes_are_audited_and_listed(client, auth):
    admin, headers = auth.user("admin")
    vendor = VendorFactory()
    response = client.patch(f"/api/admin/vendors/{vendor.id}", headers=headers,
                            json={"fee_policy": {"percent_bps": 500, "fixed": 10}, "status": "suspended"})
    assert response.status_code == 200
    listed = client.get("/api/admin/audit-log?object_type=vendor", headers=headers).get_json()
    actions = sorted(row["action"] for row in listed["data"])
    assert actions == ["vendor.fee_policy_changed", "vendor.status_set_suspended"]
    assert all(row["actor"] == admin.id and row["at"].endswith("Z") for row in listed["data"])
    assert listed["pagination"]["total_items"] == 2


def test_audit_log_is_admin_only(client, auth):
    assert client.get("/api/admin/audit-log", headers=auth.headers("vendor")).status_code == 403
    assert client.get("/api/admin/audit-log").status_code == 401


def test_creating_an_admin_is_audited_as_system(app):
    from marketplace.auth.cli import users_cli

    result = app.test_cli_runner().invoke(users_cli, ["create-admin", "boss@example.com", "--password", "b" * 12])
    assert result.exit_code == 0
    [entry] = entries("user.admin_created")
    assert entry.actor == audit.SYSTEM and entry.request_id is None

