"""Vendors with sales settled on the emulator, and the clock moved past the payout hold."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from marketplace import stripe_gateway
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.payouts import runs
from tests.factories import VendorFactory
from tests.payments_helpers import emu, order_for, pay

DAY = 86400
FAILING_BANK = "000111111116"


def vendor(emulator, user=None, bank: str | None = None):
    """A vendor with an onboarded Express account (a failing bank account when `bank` says so)."""
    extra = {"user": user} if user is not None else {}
    row = VendorFactory(stripe_account_id=None, **extra)
    account = stripe_gateway.create_express_account(row.id, "US", row.email, f"vendor-account-{row.id}")
    emu(emulator, "POST", f"/_emulator/accounts/{account['id']}/onboard",
        **({"bank_account_number": bank} if bank else {}))
    row.stripe_account_id = account["id"]
    db.session.commit()
    return row


def sell(client, shopper: dict, seller, price: int, emulator) -> dict:
    """One paid order of one product of `price` from `seller`."""
    order = order_for(client, shopper, [seller], [price])
    response = pay(client, shopper, order["id"], emulator=emulator)
    assert response.status_code == 200, response.get_json()
    return order


def advance(emulator, days: float) -> None:
    emu(emulator, "POST", "/_emulator/clock/advance", seconds=int(days * DAY))


def follow_emulator_clock(monkeypatch, emulator) -> None:
    """Payout runs read the emulator's clock, so a moved clock moves the hold cut-off too."""
    def now():
        return datetime.fromtimestamp(emu(emulator, "GET", "/_emulator/clock")["now"], timezone.utc)

    monkeypatch.setattr(runs, "now", now)


def ledger_balance(seller, currency: str = "usd") -> int:
    db.session.rollback()
    return ledger.balance(f"vendor:{seller.id}:stripe_balance", currency)


def stripe_payouts(emulator, seller) -> list[dict]:
    """Every payout Stripe holds for the vendor's account."""
    return emu(emulator, "GET", "/v1/payouts", account=seller.stripe_account_id, limit=100)["data"]


def available_on_stripe(emulator, seller, currency: str = "usd") -> int:
    balance = emu(emulator, "GET", "/v1/balance", account=seller.stripe_account_id)
    return sum(b["amount"] for b in balance["available"] if b["currency"] == currency)


def payouts_of(seller):
    from marketplace.payouts.models import Payout

    db.session.rollback()
    return list(db.session.scalars(select(Payout).where(Payout.vendor_id == seller.id, Payout.dry_run.is_(False))))


def three_sellers(client, auth, emulator):
    """Three vendors with one settled sale each (2000, 3000, 4000), the clock past the hold:
    (the vendors, what the ledger owes each)."""
    shopper = auth.headers("shopper")
    rows = [vendor(emulator) for _ in range(3)]
    for index, seller in enumerate(rows):
        sell(client, shopper, seller, 1000 * (index + 2), emulator)
    advance(emulator, 8)
    return rows, {seller.id: ledger_balance(seller) for seller in rows}


def assert_paid_once(emulator, rows, owed) -> None:
    """Each vendor has exactly one payout at Stripe, of what it was owed, and owes nothing more."""
    for seller in rows:
        on_stripe = stripe_payouts(emulator, seller)
        assert [p["amount"] for p in on_stripe] == [owed[seller.id]], seller.id
        assert ledger_balance(seller) == 0
