"""The ledger's side of reconciliation: journal entries read as (amount, fee, currency) per transaction.

Per ledger_entries.py, an entry records one balance transaction: net = its posting on
`<owner>:stripe_balance`, fee = its posting on the fee account (`platform:stripe_fees`,
`vendor:<id>:platform_fees`), amount = net + fee. Rows are read in keyset chunks, newest
first, so a window of any size is never held in memory.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import and_, case, func, or_, select

from marketplace.extensions import db
from marketplace.ledger import accounts
from marketplace.ledger.models import JournalEntry, Posting
from marketplace.reconciliation.matching import LedgerRow

CHUNK = 2000


def _columns():
    net = func.sum(case((Posting.account.like(accounts.ANY_BALANCE), Posting.amount), else_=0))
    is_fee = or_(*[Posting.account.like(f"%{suffix}") for suffix in accounts.FEE_SUFFIXES])
    fee = func.sum(case((is_fee, Posting.amount), else_=0))
    return (
        JournalEntry.id, JournalEntry.stripe_balance_transaction_id, JournalEntry.stripe_object_id,
        JournalEntry.occurred_at, JournalEntry.stripe_account, func.min(Posting.currency), net, fee,
    )


def _row(r) -> LedgerRow:
    net, fee = int(r[6] or 0), int(r[7] or 0)
    return LedgerRow(r[0], r[1], r[2], int(r[3].timestamp()), r[4], r[5], net + fee, fee)


def _account_filter(account: str | None):
    if account is None:
        return JournalEntry.stripe_account.is_(None)
    return JournalEntry.stripe_account == account


def entries_in_window(account: str | None, start: datetime, end: datetime) -> Iterator[LedgerRow]:
    """The account's entries with a balance transaction, occurred in [start, end), newest first.

    Each chunk first picks its CHUNK entries by keyset on (occurred_at, id), which an
    occurred_at index serves (walked backwards, ties sorted incrementally), and only then
    joins and sums their postings: aggregating before the LIMIT would make every chunk
    read the whole window.
    """
    upper = JournalEntry.occurred_at < end
    while True:
        chunk = (
            select(JournalEntry.id)
            .where(_account_filter(account), JournalEntry.stripe_balance_transaction_id.is_not(None))
            .where(JournalEntry.occurred_at >= start, upper)
            .order_by(JournalEntry.occurred_at.desc(), JournalEntry.id.desc())
            .limit(CHUNK)
            .subquery()
        )
        stmt = (
            select(*_columns())
            .select_from(chunk)
            .join(JournalEntry, JournalEntry.id == chunk.c.id)
            .join(Posting, Posting.entry_id == JournalEntry.id)
            .group_by(JournalEntry.id)
            .order_by(JournalEntry.occurred_at.desc(), JournalEntry.id.desc())
        )
        rows = db.session.execute(stmt).all()
        for r in rows:
            yield _row(r)
        if len(rows) < CHUNK:
            return
        last_at, last_id = rows[-1][3], rows[-1][0]
        upper = or_(JournalEntry.occurred_at < last_at,
                    and_(JournalEntry.occurred_at == last_at, JournalEntry.id < last_id))


def entries_by_transaction(bt_ids: list[str]) -> dict[str, LedgerRow]:
    """Entries recording these balance transactions, whatever their account or time."""
    if not bt_ids:
        return {}
    stmt = (
        select(*_columns()).join(Posting, Posting.entry_id == JournalEntry.id)
        .where(JournalEntry.stripe_balance_transaction_id.in_(bt_ids))
        .group_by(JournalEntry.id)
    )
    return {r[1]: _row(r) for r in db.session.execute(stmt)}


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
