"""The tour: every step goes through the HTTP API, and the API through the real stripe package."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import click
from flask import Flask

from marketplace.auth import service as auth_service
from marketplace.demo import shopping
from marketplace.demo.runtime import ApiClient, Progress, ServedApp, wait_for

PASSWORD = "demo-password-not-secret"

VENDORS = [("vera", "Vera's Ceramics", "US"), ("victor", "Victor Vinyl", "US"), ("valentina", "Valentina Velo", "US")]
SHOPPERS = ["sam", "sofia"]
PRODUCTS = {
    "vera": [("Stoneware mug", 2450, 40), ("Serving bowl", 6800, 12)],
    "victor": [("Jazz LP", 3199, 25), ("Record sleeve pack", 899, 100)],
    "valentina": [("Bike bell", 1575, 60), ("Saddle bag", 4990, 15)],
}


@dataclass
class Actor:
    name: str
    email: str
    role: str
    token: str = ""
    user_id: str = ""
    vendor_id: str = ""
    account_id: str = ""
    products: list[dict] = field(default_factory=list)


@dataclass
class Tour:
    """State carried from step to step, and what the final report prints."""

    api: ApiClient
    stripe_url: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    admin: Actor | None = None
    vendors: list[Actor] = field(default_factory=list)
    shoppers: list[Actor] = field(default_factory=list)
    orders: list[tuple[Actor, dict]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    payout_run: dict | None = None
    reconciliation: dict | None = None
    started: float = field(default_factory=time.time)

    def email(self, name: str) -> str:
        return f"{name}+{self.run_id}@demo.example"

    def emulator(self, method: str, path: str, **kwargs):
        """Drive the Stripe emulator's controls (what a bank, a card network or time would do)."""
        return ApiClient(self.stripe_url).call(method, path, **kwargs)


def login(tour: Tour, email: str) -> str:
    return tour.api.call("POST", "/api/auth/tokens", json={"email": email, "password": PASSWORD}, expect=201)["token"]


def create_admin(tour: Tour, app: Flask) -> None:
    """Admins are made on the command line; the tour does what `flask users create-admin` does."""
    with app.app_context():
        user_id = auth_service.create_user(tour.email("admin"), PASSWORD, "admin").id
    tour.admin = Actor("admin", tour.email("admin"), "admin", login(tour, tour.email("admin")), user_id)


def register_actors(tour: Tour) -> None:
    """Three vendors and two shoppers register and take tokens over HTTP."""
    people = [(name, "vendor", tour.vendors) for name, _, _ in VENDORS] + [(n, "shopper", tour.shoppers) for n in SHOPPERS]
    for name, role, bucket in people:
        actor = Actor(name, tour.email(name), role)
        body = tour.api.call("POST", "/api/auth/register", json={"email": actor.email, "password": PASSWORD,
                                                                  "role": role}, expect=201)
        actor.user_id = body["id"]
        actor.token = login(tour, actor.email)
        bucket.append(actor)


def onboard_vendors(tour: Tour) -> None:
    """Each vendor gets an Express account and a link, finishes onboarding, and turns active via account.updated."""
    for actor, (_, display_name, country) in zip(tour.vendors, VENDORS):
        vendor = tour.api.call("POST", "/api/vendors", actor.token, json={"display_name": display_name,
                                                                           "country": country}, expect=201)
        actor.vendor_id, actor.account_id = vendor["id"], vendor["stripe_account_id"]
        tour.api.call("POST", "/api/vendors/me/onboarding-link", actor.token, expect=201)
        tour.emulator("POST", f"/_emulator/accounts/{actor.account_id}/onboard", json={})
    for actor in tour.vendors:
        wait_for(lambda a=actor: tour.api.call("GET", "/api/vendors/me", a.token)["status"] == "active",
                 f"{actor.name} to become active")


def list_products(tour: Tour) -> None:
    """Vendors put their products on sale."""
    for actor in tour.vendors:
        for name, price, stock in PRODUCTS[actor.name]:
            actor.products.append(tour.api.call("POST", "/api/products", actor.token, expect=201, json={
                "name": name, "price": price, "currency": "usd", "stock": stock}))


def report(tour: Tour) -> None:
    """Per vendor: sales, fees, refunds, payouts; the platform's revenue; reconciliation counts."""
    out = click.echo
    out("")
    out(f"Demo run {tour.run_id}: {len(tour.orders)} paid orders")
    for note in tour.notes:
        out(f"  - {note}")
    out("")
    out(f"  {'vendor':<12}{'sales':>9}{'fees':>8}{'refunds':>9}{'paid out':>10}{'still held':>12}")
    for actor in tour.vendors:
        sales = tour.api.call("GET", "/api/vendors/me/sales?per_page=100", actor.token)["data"]
        paid = tour.api.call("GET", "/api/vendors/me/payouts", actor.token)["summary"]["total_paid"]
        held = sum(b["available"] + b["pending"] for b in
                   tour.api.call("GET", "/api/vendors/me/balance", actor.token)["balances"])
        gross, fees = sum(s["subtotal"] for s in sales), sum(s["platform_fee"] for s in sales)
        refunds = sum(s["refunded"] for s in sales)
        out(f"  {actor.name:<12}{gross:>9}{fees:>8}{refunds:>9}{paid:>10}{held:>12}")
    for row in tour.api.call("GET", "/api/admin/reports/revenue", tour.admin.token)["data"]:
        out("")
        out(f"  platform ({row['currency']}): gross volume {row['gross_volume']}, platform fees {row['platform_fees']}, "
            f"Stripe fees {row['stripe_fees']}, refunds {row['refunds']}, disputes {row['disputes']}, "
            f"net revenue {row['net_revenue']}")
    run = tour.payout_run or {}
    out(f"  payout run: {run.get('payouts_created')} payouts, {run.get('total_amount')} in total")
    rec = tour.reconciliation or {}
    counts = rec.get("counts", {})
    out(f"  reconciliation: {rec.get('accounts_checked')} accounts, " +
        ", ".join(f"{k} {v}" for k, v in counts.items()))
    out("  (all amounts in minor units, usd)")


STEPS = [
    ("Checking readiness", lambda tour, app: tour.api.call("GET", "/readyz", expect=200)),
    ("Registering an admin, three vendors and two shoppers",
     lambda tour, app: (create_admin(tour, app), register_actors(tour))),
    ("Onboarding the vendors (Express accounts, links, account.updated webhooks)", lambda tour, app: onboard_vendors(tour)),
    ("Listing products", lambda tour, app: list_products(tour)),
    ("Placing and paying orders (one vendor, three vendors, a decline, 3-D Secure)",
     lambda tour, app: shopping.place_and_pay(tour)),
    ("Saving a card and paying with it; paying on Stripe's hosted Checkout",
     lambda tour, app: shopping.wallet_and_checkout(tour)),
    ("A monthly subscription: subscribed, a month passes, the renewal is paid",
     lambda tour, app: shopping.subscribe_and_renew(tour)),
    ("Refunding part of the three-vendor order", lambda tour, app: shopping.refund_partially(tour)),
    ("A disputed charge: opened, vendor share recovered, won", lambda tour, app: shopping.open_and_win_dispute(tour)),
    ("Advancing Stripe's clock three days (funds become available)", lambda tour, app: shopping.advance_clock(tour)),
    ("Running a payout batch; the banks pay a day later", lambda tour, app: shopping.run_payouts(tour)),
    ("Reconciling every balance transaction against the ledger", lambda tour, app: shopping.reconcile(tour)),
]


def run(app_factory, emulator_factory) -> None:
    """Start the API and the emulator (webhooks to the API), then walk through the steps."""
    progress = Progress(total=2 + len(STEPS))
    with progress.step("Starting the API over HTTP"):
        served = ServedApp().start()
    try:
        with progress.step("Starting the Stripe emulator, webhooks to the API"):
            emulator = emulator_factory(f"{served.url}/api/webhooks/stripe")
            served.app = app = app_factory(emulator.url)
        try:
            tour = Tour(api=ApiClient(served.url), stripe_url=emulator.url)
            for title, step in STEPS:
                with progress.step(title):
                    step(tour, app)
            report(tour)
        finally:
            emulator.stop()
    finally:
        served.stop()
