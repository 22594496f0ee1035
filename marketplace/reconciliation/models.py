"""Reconciliation runs, their per-account results and the discrepancies they found."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, created_at_column, id_column
from marketplace.extensions import db
from marketplace.ledger.models import JournalEntry

STATUSES = ("queued", "running", "completed", "failed")
ACCOUNT_STATUSES = ("pending", "running", "completed", "failed")
KINDS = ("missing_in_ledger", "missing_in_stripe", "amount_mismatch")
COUNTERS = ("matched", "missing_in_ledger", "missing_in_stripe", "amount_mismatch")
PLATFORM = "platform"  # the account key of the platform's own balance

# Reconciliation reads the journal by balance transaction id and by (account, time).
Index("ix_journal_entries_stripe_balance_transaction_id", JournalEntry.stripe_balance_transaction_id)
Index("ix_journal_entries_stripe_account_occurred_at", JournalEntry.stripe_account, JournalEntry.occurred_at)
Index("ix_journal_entries_occurred_at", JournalEntry.occurred_at)


class _Counts:
    matched: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    missing_in_ledger: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    missing_in_stripe: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    amount_mismatch: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}


class ReconciliationRun(_Counts, db.Model):
    """One check of a time window [window_start, window_end) across every Stripe account."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'completed', 'failed')", name="status"),
        CheckConstraint("window_start < window_end", name="window"),
    )

    id: Mapped[str] = id_column("rcn")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False, default="api")
    accounts_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    accounts_checked: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    transactions_checked: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReconciliationAccount(_Counts, db.Model):
    """One account's share of a run; `attempt` tells a rerun's rows from a stale one's."""

    __tablename__ = "reconciliation_accounts"
    __table_args__ = (UniqueConstraint("run_id", "account", name="uq_reconciliation_accounts_run_account"),)

    id: Mapped[str] = id_column("rca")
    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id"), nullable=False)
    account: Mapped[str] = mapped_column(String(255), nullable=False)  # PLATFORM or acct_...
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    transactions: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Discrepancy(db.Model):
    """A balance transaction and a ledger entry that disagree (or one without the other)."""

    __tablename__ = "reconciliation_discrepancies"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('missing_in_ledger', 'missing_in_stripe', 'amount_mismatch')", name="kind"
        ),
        Index("ix_reconciliation_discrepancies_run_account", "run_id", "account", "attempt"),
    )

    id: Mapped[str] = id_column("dsc")
    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id"), nullable=False)
    account: Mapped[str] = mapped_column(String(255), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    balance_transaction_id: Mapped[str] = mapped_column(String(255), nullable=False)
    source_id: Mapped[str | None] = mapped_column(String(255))
    ledger_entry_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(3))
    # expected = what the ledger recorded, actual = what Stripe moved (0 when one side is absent).
    expected_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actual_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expected_fee: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actual_fee: Mapped[int] = mapped_column(BigInteger, nullable=False)
    detail: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    created_at: Mapped[datetime] = created_at_column()

    @property
    def stripe_account(self) -> str | None:
        """None for the platform, else the connected account id."""
        return None if self.account == "platform" else self.account
