"""The only writer of ledger postings: balanced, idempotent, append-only entries.

Callers pass the postings of one movement; `post()` adds the entry to the caller's
transaction (it never commits: the calling service owns the transaction). Account
names and entry kinds are those of `ledger/accounts.py`.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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
    existing = _existing(key, lines)
    if existing is not None:
        return existing
    entry_id = new_id("je")
    values = dict(
        id=entry_id, entry_key=key, kind=kind, description=description[:300],
        occurred_at=occurred_at or utcnow(), created_at=utcnow(), stripe_object_id=stripe_object_id,
        stripe_balance_transaction_id=stripe_balance_transaction_id, stripe_account=stripe_account,
        local_type=local_type, local_id=local_id,
    )
    # A webhook job and a request may record the same movement at the same moment: the
    # unique key decides without aborting the caller's transaction, and the loser reads
    # the winner's entry (on PostgreSQL the insert waits for the winner to commit).
    if not _insert_once(values):
        existing = _existing(key, lines)
        if existing is None:
            raise ConflictingEntry("The entry key is taken by an uncommitted entry.", details={"entry_key": key})
        return existing
    db.session.add_all(Posting(entry_id=entry_id, seq=i, account=line.account, currency=line.currency,
                               amount=line.amount) for i, line in enumerate(lines))
    db.session.flush()
    return db.session.get(JournalEntry, entry_id)


def _insert_once(values: dict) -> bool:
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = (insert(JournalEntry).values(**values)
            .on_conflict_do_nothing(index_elements=["entry_key"]).returning(JournalEntry.id))
    return db.session.execute(stmt).scalar() is not None


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
