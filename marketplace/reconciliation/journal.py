"""The ledger's side of reconciliation: journal entries read as (amount, fee, currency) per transaction.

Per ledger_entries.py, an entry records one balance transaction: net = its posting on
`<owner>:stripe_balance`, fee = its posting on the fee account (`platform:stripe_fees`,
`vendor:<id>:platform_fees`), amount = net + fee. Rows are read in keyset chunks, newest
first, so a window of any size is never held in memory.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import case, func, or_, select, true

from marketplace.extensions import db
from marketplace.ledger import accounts
from marketplace.ledger.models import JournalEntry, Posting
from marketplace.reconciliation.matching import LedgerRow

CHUNK = 2000


def _sums():
    """min(currency), net and fee of the postings in scope (see the module docstring)."""
    net = func.sum(case((Posting.account.like(accounts.ANY_BALANCE), Posting.amount), else_=0))
    is_fee = or_(*[Posting.account.like(f"%{suffix}") for suffix in accounts.FEE_SUFFIXES])
    fee = func.sum(case((is_fee, Posting.amount), else_=0))
    return func.min(Posting.currency), net, fee


_ENTRY = (JournalEntry.id, JournalEntry.stripe_balance_transaction_id, JournalEntry.stripe_object_id,
          JournalEntry.occurred_at, JournalEntry.stripe_account)


def _row(r) -> LedgerRow:
    net, fee = int(r[6] or 0), int(r[7] or 0)
    return LedgerRow(r[0], r[1], r[2], int(r[3].timestamp()), r[4], r[5], net + fee, fee)


def _account_filter(account: str | None):
    if account is None:
        return JournalEntry.stripe_account.is_(None)
    return JournalEntry.stripe_account == account


def entries_in_window(account: str | None, start: datetime, end: datetime) -> Iterator[LedgerRow]:
    """The account's entries with a balance transaction, occurred in [start, end), newest first.

    One query a chunk: first its CHUNK entries, picked by keyset on (occurred_at, id) and
    served by an index walked backwards from the previous chunk's last time (ties sorted
    incrementally), and only then their postings summed (aggregating before the LIMIT would
    read the whole window). The keyset's `occurred_at <= last` is what bounds the index scan:
    the OR alone only filters, and each chunk walked past all those before it.
    """
    lateral = db.session.get_bind().dialect.name == "postgresql"
    upper = [JournalEntry.occurred_at < end]
    while True:
        chunk = (
            select(*_ENTRY)
            .where(_account_filter(account), JournalEntry.stripe_balance_transaction_id.is_not(None))
            .where(JournalEntry.occurred_at >= start, *upper)
            .order_by(JournalEntry.occurred_at.desc(), JournalEntry.id.desc())
            .limit(CHUNK)
            .subquery()
        )
        # Plain tuples of str/int/datetime, which the GC stops tracking: a chunk held while
        # Stripe's pages are parsed is then never promoted into, and rescanned with, the
        # oldest generation (with Row objects, 10^5 transactions took 6 full collections to
        # reading's 2; with tuples 3 or 4).
        rows = [tuple(r) for r in db.session.execute(_summed(chunk, lateral))]
        for r in rows:
            yield _row(r)
        if len(rows) < CHUNK:
            return
        last_at, last_id = rows[-1][3], rows[-1][0]
        upper = [JournalEntry.occurred_at <= last_at,
                 or_(JournalEntry.occurred_at < last_at, JournalEntry.id < last_id)]


def _summed(chunk, lateral: bool):
    """The chunk's entries with their sums, newest first.

    On PostgreSQL each entry sums its postings in a LATERAL subquery, which can only be an
    index lookup per entry: a plain join and GROUP BY lets the planner hash-join a scan of
    every posting, once per chunk. SQLite has no LATERAL, and no hash join either.
    """
    keys = (chunk.c.id, chunk.c.stripe_balance_transaction_id, chunk.c.stripe_object_id,
            chunk.c.occurred_at, chunk.c.stripe_account)
    newest_first = (chunk.c.occurred_at.desc(), chunk.c.id.desc())
    if lateral:
        sums = select(*_sums()).where(Posting.entry_id == chunk.c.id).having(func.count() > 0).lateral()
        return select(*keys, *sums.c).select_from(chunk).join(sums, true()).order_by(*newest_first)
    return (select(*keys, *_sums()).join(Posting, Posting.entry_id == chunk.c.id)
            .group_by(*keys).order_by(*newest_first))


def entries_by_transaction(bt_ids: list[str]) -> dict[str, LedgerRow]:
    """Entries recording these balance transactions, whatever their account or time."""
    if not bt_ids:
        return {}
    stmt = (
        select(*_ENTRY, *_sums()).join(Posting, Posting.entry_id == JournalEntry.id)
        .where(JournalEntry.stripe_balance_transaction_id.in_(bt_ids))
        .group_by(JournalEntry.id)
    )
    return {r[1]: _row(r) for r in db.session.execute(stmt)}


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
