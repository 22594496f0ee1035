"""The statement's SQL: a vendor's ledger entries, each classified into the statement's figures.

A statement is of the vendor's Stripe balance, `vendor:<id>:stripe_balance` (one entry per
balance transaction on its connected account). `entries()` sums, per journal entry and
currency, the entry's postings on the vendor's balance (`bal`), on `vendor:<id>:platform_fees`
(`fee`) and on `vendor:<id>:transfer_clearing` (`clearing`), for entries touching the first
two. Each entry gets a statement kind:

| entry kind                                   | kind                                        |
|----------------------------------------------|---------------------------------------------|
| payout, payout_failure, payout_cancel (po_)  | payout                                      |
| vendor_payment (py_)                         | sale; dispute when its transfer re-made a   |
|                                              | dispute recovery; refund when it gave back  |
|                                              | what a failed refund took                   |
| vendor_payment_refund (pyr_)                 | dispute when its reversal recovered a       |
|                                              | dispute, else refund                        |
| application_fee_refund (a fee credited back) | refund                                      |
| fee_collection (pyr_ of a reversal taking    | platform_fee (its balance posting counts in |
| the fee Stripe's application fee left out)   | `platform_fees`)                            |
| platform_fee `platform-fee-<split>` (the fee | sale (its only posting is the fee)          |
| kept on a separate charge's split)           |                                             |
| anything else on the balance (nothing today) | sale if it brings money in, else refund     |

The vendor's side of a transfer or reversal (`py_`, `pyr_`) names no transfer; its platform
side (`tr_`, `trr_`, recorded with it in the same transaction) does, and the movement that
made that object says why it was made. The platform side is found as the latest platform
entry of the same split, before or with the vendor's, whose posting on the transfer clearing
account cancels the vendor's. The internal entries that only move the fee account when a
refund returns the fee or a failed one restores it touch no balance and are no line.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import aliased

from marketplace.extensions import db
from marketplace.ledger import accounts as a
from marketplace.ledger.models import JournalEntry, Posting
from marketplace.movements.models import Movement
from marketplace.orders.models import OrderSplit

SALE, PLATFORM_FEE, REFUND, DISPUTE, PAYOUT = "sale", "platform_fee", "refund", "dispute", "payout"
KINDS = (SALE, PLATFORM_FEE, REFUND, DISPUTE, PAYOUT)
TRANSFER_SIDES = (a.VENDOR_PAYMENT, a.VENDOR_PAYMENT_REFUND)


def _sum_on(account: str):
    return func.coalesce(func.sum(case((Posting.account == account, Posting.amount), else_=0)), 0)


def entries(vendor_id: str, end: datetime | None = None):
    """Per (entry, currency) touching the vendor's balance or fee account: its sums on the
    balance, fee and clearing accounts (a CTE); entries that occurred before `end` only."""
    bal, fees, clearing = (a.vendor(vendor_id, name) for name in (a.BALANCE, a.PLATFORM_FEES, a.TRANSFER_CLEARING))
    stmt = (
        select(JournalEntry.id, JournalEntry.kind, JournalEntry.occurred_at, JournalEntry.created_at,
               JournalEntry.stripe_object_id, JournalEntry.local_type, JournalEntry.local_id,
               Posting.currency,
               _sum_on(bal).label("bal"), _sum_on(fees).label("fee"), _sum_on(clearing).label("clearing"),
               and_(JournalEntry.kind == a.PLATFORM_FEE,
                    JournalEntry.entry_key == literal("platform-fee-") + JournalEntry.local_id).label("sale_fee"))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(Posting.account.in_([bal, fees, clearing]))
        .group_by(JournalEntry.id, Posting.currency)
        .having(or_(_sum_on(bal) != 0, _sum_on(fees) != 0))
    )
    if end is not None:
        stmt = stmt.where(JournalEntry.occurred_at < end)
    return stmt.cte("vendor_entries")


def _platform_side(e, vendor_id: str):
    """The stripe id (tr_/trr_) of the platform side of a vendor-side transfer entry `e`."""
    side, posting = aliased(JournalEntry), aliased(Posting)
    return (
        select(side.stripe_object_id)
        .join(posting, posting.entry_id == side.id)
        .where(posting.account == a.vendor(vendor_id, a.TRANSFER_CLEARING), posting.currency == e.c.currency,
               posting.amount == -e.c.clearing, side.kind.in_((a.TRANSFER, a.TRANSFER_REVERSAL)),
               side.stripe_account.is_(None), side.local_type == "order_split", side.local_id == e.c.local_id,
               side.created_at <= e.c.created_at)
        .order_by(side.created_at.desc(), side.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def classified(vendor_id: str, start: datetime, end: datetime):
    """The vendor's entries before `end` with their statement kind (a CTE); only the ones in
    [start, end) are classified (the older ones count in the opening balance alone)."""
    e = entries(vendor_id, end)
    in_month = e.c.occurred_at >= start
    sides = (
        select(e, case((in_month & e.c.kind.in_(TRANSFER_SIDES), _platform_side(e, vendor_id))).label("made_by"))
        .cte("vendor_entries_sides")
    )
    why = aliased(Movement)
    kind = case(
        (sides.c.kind.in_(a.PAYOUT_KINDS), PAYOUT),
        (sides.c.kind == a.FEE_COLLECTION, PLATFORM_FEE),
        (and_(sides.c.kind == a.VENDOR_PAYMENT, why.kind == "retransfer", why.dispute_id.is_not(None)), DISPUTE),
        (and_(sides.c.kind == a.VENDOR_PAYMENT, why.kind == "retransfer", why.refund_id.is_not(None)), REFUND),
        (sides.c.kind == a.VENDOR_PAYMENT, SALE),
        (and_(sides.c.kind == a.VENDOR_PAYMENT_REFUND, why.dispute_id.is_not(None)), DISPUTE),
        (sides.c.kind.in_((a.VENDOR_PAYMENT_REFUND, a.APPLICATION_FEE_REFUND)), REFUND),
        (sides.c.sale_fee, SALE),
        (sides.c.bal > 0, SALE),
        else_=REFUND,
    )
    return (
        select(sides, case((sides.c.occurred_at >= start, kind)).label("statement_kind"),
               OrderSplit.order_id)
        .outerjoin(why, why.stripe_id == sides.c.made_by)
        .outerjoin(OrderSplit, and_(sides.c.local_type == "order_split", OrderSplit.id == sides.c.local_id))
        .cte("statement_entries")
    )


def _in(c, kind: str, value):
    return func.coalesce(func.sum(case((c.statement_kind == kind, value), else_=0)), 0)


def balances(vendor_id: str, start: datetime, end: datetime) -> list[dict]:
    """ONE grouped query: per currency, the opening balance and each kind's signed sum in the month.

    `sales` is the sale entries' gross (balance and fee postings), `platform_fees` their fee
    postings and what fee collections took from the balance; `refunds`, `disputes` and `payouts` are the balance postings of those kinds
    (negative: money out); `change` is every balance posting of the month.
    """
    c = classified(vendor_id, start, end).c
    stmt = (
        select(c.currency,
               func.coalesce(func.sum(case((c.occurred_at < start, c.bal), else_=0)), 0).label("opening"),
               func.coalesce(func.sum(case((c.occurred_at >= start, c.bal), else_=0)), 0).label("change"),
               _in(c, SALE, c.bal + c.fee).label("sales"), (_in(c, SALE, c.fee) - _in(c, PLATFORM_FEE, c.bal)).label("platform_fees"),
               _in(c, REFUND, c.bal).label("refunds"), _in(c, DISPUTE, c.bal).label("disputes"),
               _in(c, PAYOUT, c.bal).label("payouts"))
        .group_by(c.currency)
        .order_by(c.currency)
    )
    return [{key: (value if key == "currency" else int(value)) for key, value in row.items()}
            for row in db.session.execute(stmt).mappings()]


def lines(vendor_id: str, start: datetime, end: datetime) -> list[dict]:
    """The month's lines, oldest first: one per entry (its signed effect on the balance; a
    sale's is its gross), and one more per sale with a fee (the fee, negative)."""
    c = classified(vendor_id, start, end).c
    common = (c.occurred_at, c.created_at, c.id, c.currency, c.order_id, c.local_type, c.local_id,
              c.stripe_object_id)
    main = select(*common, c.statement_kind.label("kind"),
                  case((c.statement_kind == SALE, c.bal + c.fee), else_=c.bal).label("amount"),
                  literal(0).label("part"))
    fee = (select(*common, literal(PLATFORM_FEE).label("kind"), (-c.fee).label("amount"), literal(1).label("part"))
           .where(c.statement_kind == SALE, c.fee != 0))
    both = sa.union_all(main.where(c.occurred_at >= start), fee.where(c.occurred_at >= start)).subquery()
    stmt = (select(both).where(both.c.amount != 0)
            .order_by(both.c.occurred_at, both.c.created_at, both.c.id, both.c.currency, both.c.part))
    return [
        {"at": row.occurred_at, "kind": row.kind, "currency": row.currency, "amount": int(row.amount),
         "order_id": row.order_id, "payout_id": row.local_id if row.local_type == "payout" else None,
         "stripe_id": row.stripe_object_id}
        for row in db.session.execute(stmt)
    ]


def months(vendor_id: str) -> list[tuple[str, str]]:
    """ONE grouped query: every (YYYY-MM in UTC, currency) in which the vendor has a line, newest first."""
    e = entries(vendor_id)
    month = _utc_month(e.c.occurred_at).label("month")
    stmt = (select(month, e.c.currency)
            .where(or_(e.c.bal != 0, e.c.sale_fee))
            .group_by(month, e.c.currency)
            .order_by(month.desc(), e.c.currency))
    return [(row.month, row.currency) for row in db.session.execute(stmt)]


def _utc_month(column):
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)  # SQLite holds UTC text (UTCDateTime)
