"""A movement: one Stripe call that moves money after the charge, as a durable local row."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db

# `fee_collection`: a reversal taking the part of a split's platform fee that Stripe's
# application fee did not (a subscription's first invoice, finalized before its fixed part
# could be set).
KINDS = ("transfer", "transfer_reversal", "retransfer", "fee_refund", "refund", "payout", "fee_collection")
# The kinds that take money back from a vendor's balance (reversals of its transfers).
REVERSAL_KINDS = ("transfer_reversal", "fee_collection")
STATUSES = ("planned", "sent", "succeeded", "failed", "unknown", "needs_attention")
# Work not finished: the sweeper drives these when they are due.
OPEN = ("planned", "sent", "unknown")
# Movements whose money is committed: planned or under way count as made when planning more.
LIVE = ("planned", "sent", "unknown", "needs_attention", "succeeded")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Movement(db.Model):
    """Planned with the decision that needs it, sent with no transaction open, recorded once.

    `stripe_account` is the account the call is made on (a vendor's, for a payout; None:
    the platform). `source_id` is the Stripe object it draws on: the charge of a refund or
    of a source-transaction transfer, the transfer a reversal reverses; when that object is
    itself made by a movement not done yet, `source_movement_id` names it and `source_id`
    is filled once it exists. `after_id` is a movement that must succeed first (a refund
    before the reversals it causes). `params` are the rest of the request, fixed at plan
    time, so every attempt sends the same request under the same key.
    """

    __tablename__ = "movements"
    __table_args__ = (
        CheckConstraint(_in("kind", KINDS), name="kind"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # The sweeper only scans unfinished movements: keep that index small.
        Index("ix_movements_due", "next_attempt_at",
              postgresql_where=text("status IN ('planned', 'sent', 'unknown')"),
              sqlite_where=text("status IN ('planned', 'sent', 'unknown')")),
        Index("ix_movements_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = id_column("mov")
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="planned")
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    stripe_account: Mapped[str | None] = mapped_column(String(255))
    destination: Mapped[str | None] = mapped_column(String(255))
    source_id: Mapped[str | None] = mapped_column(String(255))
    source_movement_id: Mapped[str | None] = mapped_column(ForeignKey("movements.id"), index=True)
    after_id: Mapped[str | None] = mapped_column(ForeignKey("movements.id"), index=True)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    stripe_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Bumped only after a definite refusal that may pass later (a balance too low): the
    # next attempt is a new request, which needs a new key (Stripe keeps the refusal's).
    key_generation: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    vendor_id: Mapped[str | None] = mapped_column(ForeignKey("vendors.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    split_id: Mapped[str | None] = mapped_column(ForeignKey("order_splits.id"), index=True)
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"), index=True)
    allocation_id: Mapped[str | None] = mapped_column(ForeignKey("refund_allocations.id"))
    dispute_id: Mapped[str | None] = mapped_column(ForeignKey("disputes.id"), index=True)
    recovery_id: Mapped[str | None] = mapped_column(ForeignKey("dispute_recoveries.id"))
    payout_id: Mapped[str | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)

    # When the row last changed before the engine's claim (set by the claim, not stored).
    previous_attempt_at = None
    claimed_at = None
    outcome_unknown = False

    @property
    def idempotency_key(self) -> str:
        """`<kind>-<movement id>` (and `-<n>` once a refusal made a new request necessary)."""
        key = f"{self.kind}-{self.id}"
        return f"{key}-{self.key_generation}" if self.key_generation else key

    @property
    def by_stripe(self) -> bool:
        """Made by Stripe itself (a destination charge's transfer): found, never sent."""
        return bool(self.params.get("by_stripe"))
