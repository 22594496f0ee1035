"""Payout runs and the payouts they create (one per vendor and currency per run)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db

RUN_STATUSES = ("queued", "running", "completed", "failed")
SHARD_STATUSES = ("queued", "running", "done", "failed")
PAYOUT_STATUSES = ("pending", "in_transit", "paid", "failed", "canceled")
# Stripe's payout states in the order they happen; a payout never moves back.
PAYOUT_RANK = {"pending": 0, "in_transit": 1, "paid": 2, "failed": 3, "canceled": 3}


class PayoutRun(db.Model):
    __tablename__ = "payout_runs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'completed', 'failed')", name="status"),
    )

    id: Mapped[str] = id_column("prun")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    currency: Mapped[str | None] = mapped_column(String(3))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payouts_created: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    # What the run pays: ledger entries up to `cutoff`, in `shards_total` shards of vendors.
    cutoff: Mapped[datetime | None] = mapped_column(UTCDateTime())
    vendors_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    shards_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    shards_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    payouts: Mapped[list["Payout"]] = relationship(back_populates="run", order_by="Payout.id")

    @property
    def progress(self) -> dict:
        return {"vendors": self.vendors_total, "shards": self.shards_total, "shards_done": self.shards_done}


class PayoutRunShard(db.Model):
    """A share of a run's vendors, worked by whichever process claims it (a lease: a worker
    killed while working it leaves it to the next, which skips the vendors already paid)."""

    __tablename__ = "payout_run_shards"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index("ix_payout_run_shards_run_id_status", "run_id", "status"),
    )

    id: Mapped[str] = id_column("prsh")
    run_id: Mapped[str] = mapped_column(ForeignKey("payout_runs.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    # [[vendor id, currency, amount owed, Stripe account, period start (ISO 8601) or null], ...]
    dues: Mapped[list] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payouts_created: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Payout(db.Model):
    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'in_transit', 'paid', 'failed', 'canceled')", name="status"
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_payouts_vendor_id_created_at", "vendor_id", "created_at"),
        Index("ix_payouts_amount_created_at", "amount", "created_at"),  # admin search by amount
        Index("ix_payouts_created_at_id", "created_at", "id"),  # the accounting export's keyset
        # One payout per vendor and currency per run, whoever works the vendor's shard.
        Index("uq_payouts_run_vendor_currency", "run_id", "vendor_id", "currency", unique=True),
    )

    id: Mapped[str] = id_column("pout")
    run_id: Mapped[str] = mapped_column(ForeignKey("payout_runs.id"), nullable=False)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.id"), nullable=False)
    # Copied from the run so that every query can leave would-be payouts out cheaply.
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    stripe_account: Mapped[str] = mapped_column(String(255), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    stripe_payout_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    gross_sales: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    platform_fees: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    refunds: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    disputes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    net_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    order_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)

    run: Mapped[PayoutRun] = relationship(back_populates="payouts")

    @property
    def period(self) -> dict:
        return {"start": self.period_start, "end": self.period_end}

    @property
    def breakdown(self) -> dict:
        return {"gross_sales": self.gross_sales, "platform_fees": self.platform_fees,
                "refunds": self.refunds, "disputes": self.disputes, "net_amount": self.net_amount}
