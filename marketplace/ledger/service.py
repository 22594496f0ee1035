"""The only writer of ledger postings: balanced, idempotent, append-only entries.

Callers pass the postings of one movement; `post()` adds the entry to the caller's
transaction (it never commits: the calling service owns the transaction). Account
names and entry kinds are those of `ledger/accounts.py`.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import make_transient_to_detached

from marketplace.database import new_id, utcnow
from marketplace.errors import AppError
from marketplace.extensions import db
from marketplace.ledger import accounts
from marketplace.ledger.models import JournalEntry, Posting


class UnbalancedEntry(AppError):
    status, code, message = 500, "ledger_unbalanced", "A ledger entry did not balance."


class ConflictingEntry(AppError):
    status, code, message = 500, "ledger_conflict", "A ledger entry was recorded twice with different postings."


@dataclass(frozen=True)
class Line:
    account: str
    currency: str
    amount: int


platform, vendor = accounts.platform, accounts.vendor  # the account names, for callers


def post(kind: str, lines: list[Line], *, key: str, occurred_at: datetime | None = None,
         description: str = "", stripe_object_id: str | None = None,
         stripe_balance_transaction_id: str | None = None, stripe_account: str | None = None,
         local_type: str | None = None, local_id: str | None = None) -> JournalEntry:
    """Record one balanced movement once (keyed by `key`); returns the entry."""
    if kind not in accounts.KINDS:
        raise ValueError(f"{kind!r} is not an entry kind of ledger/accounts.py")
    _check(lines)
    now = utcnow()
    entry = JournalEntry(
        id=new_id("je"), entry_key=key, kind=kind, description=description[:300],
        occurred_at=occurred_at or now, created_at=now, stripe_object_id=stripe_object_id,
        stripe_balance_transaction_id=stripe_balance_transaction_id, stripe_account=stripe_account,
        local_type=local_type, local_id=local_id,
    )
    # The unique key decides, with no read first and without aborting the caller's
    # transaction: a key recorded before makes the insert do nothing (and a webhook job and
    # a request recording the same movement at the same moment: on PostgreSQL the loser's
    # insert waits for the winner to commit); then the entry recorded is read and compared.
    session = db.session()
    insert_entry, insert_postings = _statements(session.get_bind().dialect.name)
    if session.execute(insert_entry, {name: getattr(entry, name) for name in _ENTRY_COLUMNS}).scalar() is None:
        existing = _existing(key, lines)
        if existing is None:
            raise ConflictingEntry("The entry key is taken by an uncommitted entry.", details={"entry_key": key})
        return existing
    session.execute(insert_postings, [
        {"id": new_id("pst"), "entry_id": entry.id, "seq": i, "account": line.account,
         "currency": line.currency, "amount": line.amount} for i, line in enumerate(lines)
    ])
    # The row just inserted is this object's: it joins the session as persistent with no
    # SELECT (its postings load when first read, as they did).
    make_transient_to_detached(entry)
    session.add(entry)
    return entry


_ENTRY_COLUMNS = tuple(column.key for column in JournalEntry.__table__.columns)


@functools.cache
def _statements(dialect: str):
    """(the entry's insert, doing nothing on a taken key and returning the id; the postings'), built once."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    entries, postings = JournalEntry.__table__, Posting.__table__
    return (insert(entries).on_conflict_do_nothing(index_elements=["entry_key"]).returning(entries.c.id),
            insert(postings))


def _existing(key: str, lines: list[Line]) -> JournalEntry | None:
    existing = db.session.scalar(select(JournalEntry).where(JournalEntry.entry_key == key))
    if existing is not None and _signature(existing.postings) != _signature(lines):
        raise ConflictingEntry(details={"entry_key": key})
    return existing


def _check(lines: list[Line]) -> None:
    if len(lines) < 2:
        raise UnbalancedEntry("An entry needs at least two postings.")
    totals: dict[str, int] = defaultdict(int)
    for line in lines:
        if type(line.amount) is not int or line.amount == 0:
            raise UnbalancedEntry("Posting amounts are non-zero integers in minor units.")
        if len(line.currency) != 3 or line.currency != line.currency.lower():
            raise UnbalancedEntry("Currencies are lowercase ISO codes.")
        totals[line.currency] += line.amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedEntry(details={"unbalanced": unbalanced})


def _signature(lines) -> list[tuple[str, str, int]]:
    return sorted((line.account, line.currency, line.amount) for line in lines)


def entry_for(key: str) -> JournalEntry | None:
    """The entry recorded under `key`, if any."""
    return db.session.scalar(select(JournalEntry).where(JournalEntry.entry_key == key))


def balance(account: str, currency: str) -> int:
    """Sum of postings on one account in one currency."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0)).where(
            Posting.account == account, Posting.currency == currency
        )
    )
    return int(total)


def unbalanced_entries() -> list[tuple[str, str, int]]:
    """Every (entry id, currency, sum) whose postings do not sum to zero: always empty."""
    stmt = (
        select(Posting.entry_id, Posting.currency, func.sum(Posting.amount))
        .group_by(Posting.entry_id, Posting.currency)
        .having(func.sum(Posting.amount) != 0)
    )
    return [(row[0], row[1], int(row[2])) for row in db.session.execute(stmt)]
