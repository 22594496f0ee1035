"""Vendor balances and payout breakdowns, read from the ledger with set-based SQL.

A vendor's money sits on `vendor:<id>:stripe_balance` (one journal entry per Stripe
balance transaction, see marketplace/payments/ledger_entries.py). For a cut-off time
`cutoff = now - PAYOUT_HOLD_DAYS`:

    available = postings on vendor:<id>:stripe_balance of entries that occurred before
                `cutoff`, plus, whatever their age, every payout posting (`payout`,
                `payout_failure`, `payout_cancel`) and every debit (refunds' and disputes'
                take-backs): money already paid out or taken back counts against what is
                payable at once, money coming in waits out the hold
    pending   = the other postings on vendor:<id>:stripe_balance: sales (and retransfers)
                younger than the hold
    paid_out  = postings on vendor:<id>:paid_out (payouts less failed or canceled ones)
    held      = postings on vendor:<id>:held: shares kept on the platform while the vendor
                is suspended (transferred, and so released, on reinstatement)

`available` is what a payout run owes the vendor (net of refunds and dispute recoveries,
which are entries on the same account); it may be negative, and is then carried forward.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import case, func, select

from marketplace.extensions import db
from marketplace.ledger import accounts as a
from marketplace.ledger.accounts import PAYOUT_KINDS, SALE_KINDS, TAKEBACK_KINDS, vendor_id_of
from marketplace.ledger.models import JournalEntry, Posting

_recoveries = sa.table(
    "dispute_recoveries", sa.column("stripe_transfer_reversal_id"), sa.column("stripe_retransfer_id")
)


@dataclass(frozen=True)
class Due:
    vendor_id: str
    currency: str
    available: int
    pending: int


def grouped_balances(cutoff: datetime, currency: str | None = None, accounts: list[str] | None = None):
    """ONE grouped query: (account, currency, available, pending) per vendor account and currency."""
    # Money in waits out the hold; money out (payouts, refunds' and disputes' take-backs)
    # counts against what is payable at once, whatever its age.
    settled = sa.or_(JournalEntry.kind.in_(PAYOUT_KINDS), JournalEntry.occurred_at < cutoff, Posting.amount < 0)
    stmt = (
        select(
            Posting.account, Posting.currency,
            func.sum(case((settled, Posting.amount), else_=0)).label("available"),
            func.sum(case((settled, 0), else_=Posting.amount)).label("pending"),
        )
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .group_by(Posting.account, Posting.currency)
        .order_by(Posting.account, Posting.currency)
    )
    if accounts is not None:
        stmt = stmt.where(Posting.account.in_(accounts))
    else:
        stmt = stmt.where(Posting.account.like(a.VENDOR_BALANCES))
    if currency:
        stmt = stmt.where(Posting.currency == currency)
    return db.session.execute(stmt)


def amounts_due(cutoff: datetime, currency: str | None = None) -> list[Due]:
    """What every vendor is owed per currency at `cutoff` (may be negative)."""
    return [
        Due(vendor_id_of(account), cur, int(available), int(pending))
        for account, cur, available, pending in grouped_balances(cutoff, currency)
    ]


def vendor_balances(vendor_id: str, cutoff: datetime) -> list[dict]:
    """`[{currency, pending, available, paid_out, held}]` of one vendor (module docstring)."""
    balance, paid_out, held = a.vendor(vendor_id), a.vendor(vendor_id, a.PAID_OUT), a.vendor(vendor_id, a.HELD)
    rows: dict[str, dict] = {}
    for account, cur, available, pending in grouped_balances(cutoff, accounts=[balance, paid_out, held]):
        row = rows.setdefault(cur, {"currency": cur, "pending": 0, "available": 0, "paid_out": 0, "held": 0})
        if account in (paid_out, held):
            row["paid_out" if account == paid_out else "held"] += int(available) + int(pending)
        else:
            row["pending"] += int(pending)
            row["available"] += int(available)
    return [rows[cur] for cur in sorted(rows)]


def breakdown(vendor_id: str, currency: str, start: datetime | None, end: datetime) -> dict:
    """Gross sales, platform fees, refunds, disputes, net and order count of entries in (start, end].

    gross_sales - platform_fees - refunds - disputes = net_amount, the change of the vendor's
    balance over the period (payouts aside). A dispute recovery is a transfer reversal named
    by a dispute recovery row; a won dispute's re-transfer counts back against it.
    """
    params = {"bal": a.vendor(vendor_id, a.BALANCE), "fees": a.vendor(vendor_id, a.PLATFORM_FEES),
              "clearing": a.vendor(vendor_id, a.TRANSFER_CLEARING), "currency": currency, "end": end}
    if start is not None:
        params["start"] = start
    net, platform_fees, sales, takebacks, disputed, retransfers, orders = (
        int(value or 0) for value in db.session.execute(_breakdown_statement(start is not None), params).one()
    )
    return {
        "gross_sales": sales - retransfers, "platform_fees": platform_fees,
        "refunds": takebacks - disputed, "disputes": disputed - retransfers,
        "net_amount": net, "order_count": orders,
    }


@functools.cache
def _breakdown_statement(bounded: bool):
    """breakdown()'s query, built once (a payout run asks it for every vendor it pays)."""
    bal, fees, clearing = sa.bindparam("bal"), sa.bindparam("fees"), sa.bindparam("clearing")
    own = Posting.account.in_([bal, fees])
    recovered = JournalEntry.stripe_object_id.in_(select(_recoveries.c.stripe_transfer_reversal_id))
    retransferred = JournalEntry.stripe_object_id.in_(select(_recoveries.c.stripe_retransfer_id))
    on_clearing = Posting.account == clearing

    def total(condition, value=Posting.amount):
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    stmt = (
        select(
            total(Posting.account == bal), total(Posting.account == fees),
            total(own & JournalEntry.kind.in_(SALE_KINDS)),
            total(own & JournalEntry.kind.in_(TAKEBACK_KINDS), -Posting.amount),
            total(on_clearing & (JournalEntry.kind == a.TRANSFER_REVERSAL) & recovered, -Posting.amount),
            total(on_clearing & (JournalEntry.kind == a.TRANSFER) & retransferred),
            func.count(sa.distinct(case(
                ((JournalEntry.kind == a.VENDOR_PAYMENT) & (JournalEntry.local_type == "order_split"),
                 JournalEntry.local_id)))),
        )
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(Posting.account.in_([bal, fees, clearing]), Posting.currency == sa.bindparam("currency"),
               JournalEntry.kind.not_in(PAYOUT_KINDS),
               JournalEntry.occurred_at < sa.bindparam("end", type_=JournalEntry.occurred_at.type))
    )
    if bounded:
        stmt = stmt.where(JournalEntry.occurred_at >= sa.bindparam("start", type_=JournalEntry.occurred_at.type))
    return stmt
