"""Tour steps after onboarding: orders, payments, a refund, a dispute, payouts and reconciliation."""
from __future__ import annotations

import secrets
import time

from marketplace.demo.runtime import DemoError, wait_for

DAY = 86400


def _product(tour, vendor_name: str, index: int) -> dict:
    return next(a for a in tour.vendors if a.name == vendor_name).products[index]


def _order(tour, shopper, lines: list[tuple[str, int, int]]) -> dict:
    items = [{"product_id": _product(tour, v, i)["id"], "quantity": q} for v, i, q in lines]
    return tour.api.call("POST", "/api/orders", shopper.token, json={"items": items}, expect=201,
                         headers={"Idempotency-Key": f"demo-order-{secrets.token_hex(8)}"})


def _pay(tour, shopper, order: dict, payment_method: str, expect=200) -> dict:
    tour.api.call("POST", f"/api/orders/{order['id']}/payment-intent", shopper.token, expect=201)
    return tour.api.call("POST", f"/api/orders/{order['id']}/confirm", shopper.token, expect=expect,
                         json={"payment_method": payment_method})


def _status(tour, shopper, order_id: str) -> str:
    return tour.api.call("GET", f"/api/orders/{order_id}", shopper.token)["status"]


def _wait_status(tour, shopper, order_id: str, *statuses: str) -> None:
    wait_for(lambda: _status(tour, shopper, order_id) in statuses, f"order {order_id} to be {'/'.join(statuses)}")


def _wait_transferred(tour, shopper, order_id: str) -> None:
    """Until every vendor's share reached its account: capture is asynchronous, so a paid
    charge settles (and a destination charge's transfer exists) a moment after success."""
    def transferred():
        order = tour.api.call("GET", f"/api/orders/{order_id}", shopper.token)
        return all(split["stripe_transfer_id"] for split in order["splits"])
    wait_for(transferred, f"order {order_id}'s transfers")


def place_and_pay(tour) -> None:
    """One single-vendor and one three-vendor order paid by card; one decline; one 3-D Secure."""
    sam, sofia = tour.shoppers
    single = _order(tour, sam, [("vera", 0, 2)])
    _pay(tour, sam, single, "pm_card_visa")
    multi = _order(tour, sofia, [("vera", 1, 1), ("victor", 0, 2), ("valentina", 0, 3)])
    _pay(tour, sofia, multi, "pm_card_visa")
    declined = _order(tour, sam, [("victor", 1, 3)])
    tour.api.call("POST", f"/api/orders/{declined['id']}/payment-intent", sam.token, expect=201)
    refusal = tour.api.session.post(f"{tour.api.base_url}/api/orders/{declined['id']}/confirm",
                                    headers={"Authorization": f"Bearer {sam.token}"},
                                    json={"payment_method": "pm_card_chargeDeclined"}, timeout=30)
    if refusal.status_code != 402:
        raise DemoError(f"expected a decline, got {refusal.status_code}")
    tour.notes.append(f"declined card: 402 {refusal.json()['error']['details'].get('decline_code')}, then paid by visa")
    tour.api.call("POST", f"/api/orders/{declined['id']}/confirm", sam.token, json={"payment_method": "pm_card_visa"})
    secure = _order(tour, sofia, [("valentina", 1, 1), ("victor", 1, 1)])
    answer = _pay(tour, sofia, secure, "pm_card_authenticationRequired")
    if answer["status"] != "requires_action":
        raise DemoError(f"expected requires_action, got {answer['status']}")
    intent = tour.api.call("GET", f"/api/orders/{secure['id']}", sofia.token)["payment"]["payment_intent_id"]
    tour.emulator("POST", f"/_emulator/payment_intents/{intent}/authenticate", json={"outcome": "succeed"})
    tour.notes.append("3-D Secure: requires_action, authenticated, paid via payment_intent.succeeded")
    for shopper, order in ((sam, single), (sofia, multi), (sam, declined), (sofia, secure)):
        _wait_status(tour, shopper, order["id"], "paid")
        _wait_transferred(tour, shopper, order["id"])
        tour.orders.append((shopper, order))


def wallet_and_checkout(tour) -> None:
    """Sofia saves a card through a SetupIntent, makes it her default and pays a three-vendor
    order with it (no payment method named); Sam pays an order on Stripe's hosted Checkout."""
    sam, sofia = tour.shoppers
    setup = tour.api.call("POST", "/api/payment-methods/setup-intent", sofia.token, expect=201)
    confirmed = tour.emulator("POST", f"/v1/setup_intents/{setup['setup_intent_id']}/confirm",
                              headers={"Authorization": "Bearer sk_test_emulator"},
                              data={"payment_method": "pm_card_mastercard"})
    card = tour.api.call("POST", "/api/payment-methods", sofia.token, expect=201,
                         json={"payment_method": confirmed["payment_method"]})
    tour.api.call("PUT", f"/api/payment-methods/{card['id']}/default", sofia.token)
    order = _order(tour, sofia, [("vera", 0, 1), ("victor", 1, 2), ("valentina", 0, 1)])
    tour.api.call("POST", f"/api/orders/{order['id']}/payment-intent", sofia.token, expect=201)
    tour.api.call("POST", f"/api/orders/{order['id']}/confirm", sofia.token, json={})
    tour.notes.append(f"saved card {card['brand']} ...{card['last4']} (SetupIntent), default, paid a "
                      "three-vendor order without naming it")
    hosted = _order(tour, sam, [("vera", 1, 1), ("valentina", 1, 1)])
    session = tour.api.call("POST", f"/api/orders/{hosted['id']}/checkout-session", sam.token, expect=201)
    page = tour.api.session.get(session["url"], params={"payment_method": "pm_card_visa"},
                                allow_redirects=False, timeout=30)
    if page.status_code not in (302, 303):
        raise DemoError(f"the hosted checkout page answered {page.status_code}")
    tour.notes.append("a two-vendor order paid on Stripe Checkout, booked from checkout.session.completed")
    for shopper, paid in ((sofia, order), (sam, hosted)):
        _wait_status(tour, shopper, paid["id"], "paid")
        _wait_transferred(tour, shopper, paid["id"])
        tour.orders.append((shopper, paid))
    receipt = tour.api.call("GET", f"/api/orders/{hosted['id']}/receipt", sam.token)
    tour.notes.append(f"receipt of the Checkout order: total {receipt['total']}, card {receipt['card']['brand']} "
                      f"...{receipt['card']['last4']}")


def subscribe_and_renew(tour) -> None:
    """Vera sells a monthly tea box; Sofia subscribes with her default card and a month
    passes on Stripe: the renewal is invoiced and paid, each invoice an order of its own."""
    vera = next(a for a in tour.vendors if a.name == "vera")
    sofia = tour.shoppers[1]
    box = tour.api.call("POST", "/api/products", vera.token, expect=201, json={
        "name": "Tea of the month", "price": 1800, "currency": "usd", "stock": 0,
        "recurring": {"interval": "month", "interval_count": 1}})
    subscription = tour.api.call("POST", "/api/subscriptions", sofia.token, expect=201, json={"product_id": box["id"]})
    if subscription["status"] != "active":
        raise DemoError(f"the subscription is {subscription['status']}, not active")
    tour.emulator("POST", "/_emulator/clock/advance", json={"seconds": 31 * DAY + 2 * 3600})  # and the draft's hour
    wait_for(lambda: tour.api.call("GET", f"/api/subscriptions/{subscription['id']}", sofia.token)[
        "latest_invoice"]["order_id"] not in (None, subscription["latest_invoice"]["order_id"]),
        "the renewal invoice to be booked")
    summary = tour.api.call("GET", "/api/vendors/me/subscriptions", vera.token)["summary"]
    tour.notes.append(f"subscription to a monthly box: first invoice and one renewal paid, "
                      f"Vera's monthly recurring revenue {summary['mrr'][0]['amount']}")


def refund_partially(tour) -> None:
    """The admin refunds part of the three-vendor order (an odd amount, spread over vendors)."""
    sofia, multi = tour.orders[1]
    refund = tour.api.call("POST", f"/api/orders/{multi['id']}/refunds", tour.admin.token, expect=201,
                           json={"amount": 1001, "reason": "requested_by_customer"})
    tour.notes.append("partial refund of 1001 split " + ", ".join(
        f"{a['vendor_id'][-6:]}={a['amount']}" for a in refund["allocations"]))
    _wait_status(tour, sofia, multi["id"], "partially_refunded")


def open_and_win_dispute(tour) -> None:
    """A shopper's bank disputes a charge; the vendor's share is recovered, then returned when won."""
    sam = tour.shoppers[0]
    order = _order(tour, sam, [("victor", 0, 1)])
    _pay(tour, sam, order, "pm_card_createDispute")
    _wait_status(tour, sam, order["id"], "disputed")
    disputes = tour.emulator("GET", "/v1/disputes", headers={"Authorization": "Bearer sk_test_emulator"})
    dispute = disputes["data"][0]["id"]
    tour.emulator("POST", f"/_emulator/disputes/{dispute}/close", json={"outcome": "won"})
    _wait_status(tour, sam, order["id"], "paid")
    tour.orders.append((sam, order))
    tour.notes.append(f"dispute {dispute}: opened, vendor share reversed; won, share re-transferred "
                      "once the platform's funds are available")


def advance_clock(tour) -> None:
    """Three days pass on Stripe: card funds become available."""
    tour.emulator("POST", "/_emulator/clock/advance", json={"seconds": 3 * DAY})


def run_payouts(tour) -> None:
    """The admin runs a payout batch; a day later the banks have paid."""
    run = tour.api.call("POST", "/api/admin/payout-runs", tour.admin.token, json={}, expect=202)
    done = wait_for(lambda: _finished(tour, f"/api/admin/payout-runs/{run['id']}"), "the payout run")
    if done["status"] != "completed":
        raise DemoError(f"payout run ended {done['status']}: {done.get('error')}")
    tour.payout_run = done
    tour.emulator("POST", "/_emulator/clock/advance", json={"seconds": DAY})
    for vendor in tour.vendors:
        wait_for(lambda v=vendor: all(p["status"] == "paid" for p in
                 tour.api.call("GET", "/api/vendors/me/payouts", v.token)["data"]), f"{vendor.name}'s payouts")


def reconcile(tour) -> None:
    """Every balance transaction on Stripe, platform and vendors, matched against the ledger."""
    now = tour.emulator("GET", "/_emulator/clock")["now"]
    start, end, runs = tour.started - 3600, now + 3600, []
    while start < end:  # a run covers at most 31 days: the month the subscription renewed in takes two
        window = {"from": _iso(start), "to": _iso(min(start + 30 * DAY, end))}
        run = tour.api.call("POST", "/api/admin/reconciliation-runs", tour.admin.token, json=window, expect=202)
        runs.append(wait_for(lambda r=run: _finished(tour, f"/api/admin/reconciliation-runs/{r['id']}"),
                             "the reconciliation run"))
        start += 30 * DAY
    counts: dict[str, int] = {}
    for run in runs:
        for name, count in run.get("counts", {}).items():
            counts[name] = counts.get(name, 0) + count
    tour.reconciliation = {**runs[-1], "counts": counts,  # the same accounts, window after window
                           "status": "failed" if any(r["status"] == "failed" for r in runs) else "completed"}


def _finished(tour, path: str) -> dict | None:
    body = tour.api.call("GET", path, tour.admin.token)
    return body if body["status"] in ("completed", "failed") else None


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
