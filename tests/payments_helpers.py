"""Onboarded vendors, orders and payments through the emulator, for the payments tests."""
from __future__ import annotations

import requests

from marketplace import stripe_gateway
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.movements.models import Movement
from marketplace.orders.models import Order
from marketplace.payments.models import Refund
from tests.factories import ProductFactory, VendorFactory

KEY = {"Authorization": "Bearer sk_test_emulator"}
# Form parameters of a card-only PaymentIntent confirmed by the server (no return_url needed).
CARD_ONLY = {"automatic_payment_methods[enabled]": "true", "automatic_payment_methods[allow_redirects]": "never"}


def emu(emulator, verb: str, path: str, account: str | None = None, **body) -> dict:
    """Call the emulator (API or controls) over HTTP."""
    headers = {**KEY, **({"Stripe-Account": account} if account else {})}
    if verb == "GET":
        response = requests.get(f"{emulator.url}{path}", params=body, headers=headers, timeout=10)
    else:
        form = {"data": body} if path.startswith("/v1/") else {"json": body}
        response = requests.post(f"{emulator.url}{path}", headers=headers, timeout=10, **form)
    assert response.status_code < 400, response.text
    return response.json()


def stripe_balance(emulator, account: str | None = None, currency: str = "usd") -> int:
    """available + pending of an account in one currency, as GET /v1/balance says."""
    balance = emu(emulator, "GET", "/v1/balance", account=account)
    return sum(b["amount"] for b in balance["available"] + balance["pending"] if b["currency"] == currency)


def onboarded_vendor(emulator, **fee):
    """A vendor with a real, onboarded Express account on the emulator."""
    vendor = VendorFactory(stripe_account_id=None, **fee)
    account = stripe_gateway.create_express_account(vendor.id, "US", vendor.email, f"vendor-account-{vendor.id}")
    emu(emulator, "POST", f"/_emulator/accounts/{account['id']}/onboard")
    vendor.stripe_account_id = account["id"]
    db.session.commit()
    return vendor


def order_for(client, shopper: dict, vendors: list, prices: list[int], quantities: list[int] | None = None) -> dict:
    """An order of one product per price (product i sold by vendors[i % len])."""
    items = []
    for index, price in enumerate(prices):
        product = ProductFactory(vendor=None, vendor_id=vendors[index % len(vendors)].id, price=price, stock=50)
        items.append({"product_id": product.id, "quantity": (quantities or [1] * len(prices))[index]})
    response = client.post("/api/orders", json={"items": items}, headers=shopper)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def pay(client, shopper: dict, order_id: str, payment_method: str = "pm_card_visa", emulator=None):
    """Create the PaymentIntent and confirm it; returns the confirm response. With the
    emulator given, the charge then settles and Stripe's events reach the app (`settle`)."""
    created = client.post(f"/api/orders/{order_id}/payment-intent", headers=shopper)
    assert created.status_code in (200, 201), created.get_json()
    confirmed = client.post(f"/api/orders/{order_id}/confirm", json={"payment_method": payment_method}, headers=shopper)
    if emulator is not None:
        settle(client, emulator)
    return confirmed


def paid_order(client, shopper: dict, emulator, prices: list[int], vendors: int | None = None,
               quantities: list[int] | None = None, payment_method: str = "pm_card_visa") -> tuple[dict, list]:
    """An order paid and settled through the API, one line per price, each from its own
    onboarded vendor (`vendors` of them; by default one per price): (order, vendors)."""
    sellers = [onboarded_vendor(emulator) for _ in range(vendors or len(prices))]
    order = order_for(client, shopper, sellers, prices, quantities)
    paid = pay(client, shopper, order["id"], payment_method, emulator=emulator)
    assert paid.status_code == 200, paid.get_json()
    return order, sellers


def settle(client, emulator, types=None) -> int:
    """Let Stripe finish what it does after a request (asynchronous capture settling a
    charge: its balance transaction, transfer and application fee; a refund failing later;
    a dispute opening), then deliver every event it sent since the last call to the app's
    webhook endpoint, signed, oldest first, as Stripe would. Returns how many."""
    emu(emulator, "POST", "/_emulator/settle")
    return deliver_events(client, emulator, types)


def deliver_events(client, emulator, types=None) -> int:
    """POST every event (the platform's and its connected accounts') the emulator recorded
    and the app was not sent yet, in the order they happened; with `types`, only those (an
    endpoint subscribed to them), the others skipped."""
    from tests.webhook_helpers import deliver

    seen = emulator.__dict__.setdefault("delivered_events", set())
    state = emulator.emulator
    with state.lock:
        events = sorted((e for (kind, _), items in state.store.lists.items() if kind == "event"
                         for e in items if e["id"] not in seen), key=lambda e: e["_seq"])
        seen.update(e["id"] for e in events if types is not None and e["type"] not in types)
        events = [{k: v for k, v in e.items() if not k.startswith("_")} for e in events
                  if types is None or e["type"] in types]
    for event in events:
        seen.add(event["id"])
        response = deliver(client, event)
        assert response.status_code == 200, response.get_json()
    return len(events)


def assert_balances_match(emulator, order_id: str) -> None:
    """Stripe's balances equal the ledger's, and each vendor holds its share of what the
    shopper kept: its net less what refunds took back, nothing while a dispute it bears is
    open or once it is lost."""
    from marketplace.payments.models import Dispute

    db.session.rollback()
    order = db.session.get(Order, order_id)
    assert stripe_balance(emulator) == ledger.balance("platform:stripe_balance", order.currency)
    borne = db.session.scalar(select(Dispute).where(Dispute.order_id == order_id, Dispute.recovery == "vendor",
                                                    Dispute.status != "won"))
    for split in order.splits:
        from marketplace.vendors.models import Vendor

        vendor = db.session.get(Vendor, split.vendor_id)
        expected = 0 if borne is not None else split.vendor_net - _taken_back(split)
        assert stripe_balance(emulator, vendor.stripe_account_id) == expected, (split.vendor_id, expected, [
            (r.status, r.amount) for r in db.session.scalars(select(Refund).where(Refund.order_id == order_id))],
            [(m.kind, m.status, m.amount, m.last_error) for m in db.session.scalars(
                select(Movement).where(Movement.order_id == order_id))])
        assert ledger.balance(f"vendor:{vendor.id}:stripe_balance", order.currency) == expected


def _taken_back(split) -> int:
    from sqlalchemy import select

    from marketplace.payments.models import Refund, RefundAllocation

    rows = db.session.execute(
        select(RefundAllocation.amount, RefundAllocation.platform_fee_refunded).join(Refund)
        .where(RefundAllocation.split_id == split.id, Refund.status == "succeeded")
    )
    return sum(amount - fee for amount, fee in rows)
