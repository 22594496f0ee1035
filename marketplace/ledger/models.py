"""The double-entry journal: entries and their postings (append-only)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.database import UTCDateTime, created_at_column, id_column
from marketplace.extensions import db


class JournalEntry(db.Model):
    """One money movement; its postings sum to zero per currency."""

    __tablename__ = "journal_entries"
    __table_args__ = (Index("ix_journal_entries_stripe_object_id", "stripe_object_id"),)

    id: Mapped[str] = id_column("je")
    # Makes posting idempotent: the same movement recorded twice is one entry.
    entry_key: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    description: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    stripe_object_id: Mapped[str | None] = mapped_column(String(255))
    stripe_balance_transaction_id: Mapped[str | None] = mapped_column(String(255))
    stripe_account: Mapped[str | None] = mapped_column(String(255))
    local_type: Mapped[str | None] = mapped_column(String(40))
    local_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_at_column()

    postings: Mapped[list["Posting"]] = relationship(
        back_populates="entry", order_by="Posting.seq", cascade="all, delete-orphan"
    )


class Posting(db.Model):
    """A signed amount on one account (debit positive, credit negative), in minor units."""

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_postings_account_currency", "account", "currency"),
    )

    id: Mapped[str] = id_column("pst")
    entry_id: Mapped[str] = mapped_column(ForeignKey("journal_entries.id"), nullable=False, index=True)
    seq: Mapped[int] = mapped_column(nullable=False)
    account: Mapped[str] = mapped_column(String(120), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)

    entry: Mapped[JournalEntry] = relationship(back_populates="postings")


@event.listens_for(JournalEntry, "before_update")
@event.listens_for(Posting, "before_update")
@event.listens_for(JournalEntry, "before_delete")
@event.listens_for(Posting, "before_delete")
def _append_only(mapper, connection, target) -> None:
    """Corrections are new entries, never edits."""
    raise RuntimeError(f"{type(target).__name__} rows are append-only")
