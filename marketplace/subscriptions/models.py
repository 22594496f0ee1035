"""A shopper's subscription to a vendor's recurring product, as Stripe bills it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db

# `creating`: the row exists, Stripe is being asked (its parameters are frozen under the
# subscription's key); then Stripe's states, moved forward by re-reading Stripe.
STATUSES = ("creating", "incomplete", "active", "past_due", "unpaid", "canceled", "incomplete_expired")
INTERVALS = ("month", "year")
LIVE_WHERE = "status IN ('creating', 'incomplete', 'active', 'past_due', 'unpaid')"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Subscription(db.Model):
    """One Stripe Subscription: the vendor's Price, the fee policy at subscription time (its
    percent is the subscription's `application_fee_percent`), where Stripe says it stands."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("interval", INTERVALS), name="interval"),
        CheckConstraint("price > 0", name="price_positive"),
        Index("ix_subscriptions_shopper_id_created_at", "shopper_id", "created_at"),
        Index("ix_subscriptions_vendor_id_status", "vendor_id", "status"),
        # One live subscription per shopper and product, whatever the concurrency.
        Index("uq_subscriptions_live", "shopper_id", "product_id", unique=True,
              postgresql_where=text(LIVE_WHERE), sqlite_where=text(LIVE_WHERE)),
    )

    id: Mapped[str] = id_column("sbn")
    shopper_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.id"), nullable=False)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), nullable=False)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_price_id: Mapped[str] = mapped_column(String(255), nullable=False)
    price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    interval: Mapped[str] = mapped_column(String(8), nullable=False)
    interval_count: Mapped[int] = mapped_column(Integer, nullable=False)
    fee_percent_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    fee_fixed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="creating")
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    latest_invoice_id: Mapped[str | None] = mapped_column(String(255))
    latest_invoice_status: Mapped[str | None] = mapped_column(String(16))
    latest_invoice_amount_paid: Mapped[int | None] = mapped_column(BigInteger)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the read of Stripe's subscription last applied here was sent: a read sent earlier
    # that comes back later (two events handled at once) is older and never applied over it.
    stripe_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)
