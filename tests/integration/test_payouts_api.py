"""Minimum and negative balances carried forward, the Stripe cap, and the balance endpoint."""
from datetime import timedelta

import pytest

from marketplace import stripe_gateway
from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.ledger.service import Line
from marketplace.payouts import service
from tests.factories import VendorFactory


def credit(seller, amount: int, days_ago: float, key: str) -> None:
    """A sale (or, negative, a take-back) on the vendor's balance, `days_ago` old."""
    ledger.post("vendor_payment" if amount > 0 else "vendor_payment_refund",
                [Line(f"vendor:{seller.id}:stripe_balance", "usd", amount),
                 Line(f"vendor:{seller.id}:transfer_clearing", "usd", -amount)],
                key=key, occurred_at=utcnow() - timedelta(days=days_ago))
    db.session.commit()


@pytest.fixture
def stripe_has(monkeypatch):
    """Every account has `available[0]` usd available on Stripe; nothing is really paid."""
    available = [10**9]
    monkeypatch.setattr(stripe_gateway, "retrieve_balance",
                        lambda account: {"available": [{"amount": available[0], "currency": "usd"}]})
    return available


def test_below_the_minimum_and_negative_balances_are_carried_forward(app, stripe_has):
    small, negative = VendorFactory(), VendorFactory()
    credit(small, 99, 10, "s1")
    credit(negative, 1000, 10, "n1")
    credit(negative, -1500, 9, "n2")
    credit(negative, 5000, 1, "n3")  # within the hold
    run = service.run_now(dry_run=True)
    assert run.status == "completed" and run.payouts_created == 0
    credit(small, 1, 9, "s2")
    credit(negative, 800, 8, "n4")
    run = service.run_now(dry_run=True)
    assert sorted((p.vendor_id, p.amount) for p in run.payouts) == sorted([(small.id, 100), (negative.id, 300)])
    stripe_has[0] = 250  # capped at Stripe's available balance
    assert [p.amount for p in service.run_now(dry_run=True).payouts if p.vendor_id == negative.id] == [250]


def test_balance_endpoint_splits_pending_available_and_paid_out(app, client, auth):
    user, headers = auth.user("vendor")
    seller = VendorFactory(user=user)
    credit(seller, 1000, 10, "a")
    credit(seller, 300, 2, "b")
    ledger.post("payout", [Line(f"vendor:{seller.id}:stripe_balance", "usd", -600),
                           Line(f"vendor:{seller.id}:paid_out", "usd", 600)], key="po1")
    db.session.commit()
    body = client.get("/api/vendors/me/balance", headers=headers).get_json()
    assert body == {"balances": [{"currency": "usd", "pending": 300, "available": 400, "paid_out": 600, "held": 0}]}
    assert client.get("/api/vendors/me/balance", headers=auth.headers("shopper")).status_code == 403
