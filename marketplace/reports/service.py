"""Revenue report: one grouped SQL query over postings, by the time their entries occurred.

Per currency, for entries with `occurred_at` in [from, to):
- gross_volume:  what shoppers paid, -sum(`shopper:clearing`) (every captured charge).
- platform_fees: the platform's fee income net of fee refunds, -sum(`platform:fee_revenue`)
  (application fees on destination charges and the fee kept on separate charges).
- stripe_fees:   what Stripe charged the platform, sum(`platform:stripe_fees`) (processing
  fees and dispute fees).
- refunds:       money returned to shoppers, sum(`platform:refunds`) (less failed refunds).
- disputes:      money taken by chargebacks, sum(`platform:disputes`) (less disputes won).
- net_revenue:   platform_fees - stripe_fees: what the platform keeps. Refunds and disputes
  are shown beside it, not subtracted: the vendors' share of both is recovered by transfer
  reversals, and the platform's share is already out of platform_fees (fee refunds).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select

from marketplace.extensions import db
from marketplace.ledger import accounts as a
from marketplace.ledger.models import JournalEntry, Posting

# figure -> (account, sign): the figure is sign * sum(postings on the account).
FIGURES = {
    "gross_volume": (a.SHOPPER_CLEARING, -1),
    "platform_fees": (a.FEE_REVENUE, -1),
    "stripe_fees": (a.STRIPE_FEES, 1),
    "refunds": (a.REFUNDS, 1),
    "disputes": (a.DISPUTES, 1),
}


def revenue(start: datetime | None = None, end: datetime | None = None) -> dict:
    """`{"data": [{currency, gross_volume, platform_fees, stripe_fees, refunds, disputes, net_revenue}]}`."""
    sums = [
        func.coalesce(func.sum(case((Posting.account == account, Posting.amount), else_=0)), 0).label(name)
        for name, (account, _) in FIGURES.items()
    ]
    stmt = (
        select(Posting.currency, *sums)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(Posting.account.in_([account for account, _ in FIGURES.values()]))
        .group_by(Posting.currency)
        .order_by(Posting.currency)
    )
    if start is not None:
        stmt = stmt.where(JournalEntry.occurred_at >= start)
    if end is not None:
        stmt = stmt.where(JournalEntry.occurred_at < end)
    data = []
    for row in db.session.execute(stmt).mappings():
        figures = {name: sign * int(row[name]) for name, (_, sign) in FIGURES.items()}
        figures["net_revenue"] = figures["platform_fees"] - figures["stripe_fees"]
        data.append({"currency": row["currency"], **figures})
    db.session.rollback()
    return {"data": data}
