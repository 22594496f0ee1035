"""Payments (one PaymentIntent per order), refunds with their vendor allocations, disputes."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db
from marketplace.orders.models import Order, OrderSplit

REFUND_REASONS = ("requested_by_customer", "duplicate", "fraudulent")
REFUND_STATUSES = ("pending", "succeeded", "failed", "canceled", "requires_action")
DISPUTE_RECOVERIES = ("vendor", "platform")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Payment(db.Model):
    """The order's one PaymentIntent and, once it succeeds, its charge and Stripe fee."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_payments_shopper_id_created_at", "shopper_id", "created_at"),
        Index("ix_payments_amount_created_at", "amount", "created_at"),  # admin search by amount
    )

    id: Mapped[str] = id_column("pay")
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True, nullable=False)
    shopper_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    payment_intent_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    client_secret: Mapped[str] = mapped_column(String(255), nullable=False)
    charge_type: Mapped[str] = mapped_column(String(24), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    application_fee_amount: Mapped[int | None] = mapped_column(BigInteger)
    # The PaymentIntent's status as last seen (requires_payment_method, requires_action, succeeded ...).
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_balance_transaction_id: Mapped[str | None] = mapped_column(String(255))
    stripe_fee: Mapped[int | None] = mapped_column(BigInteger)
    decline_code: Mapped[str | None] = mapped_column(String(100))
    confirm_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The card that paid, as the charge shows it, and Stripe's receipt page.
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    receipt_url: Mapped[str | None] = mapped_column(Text)
    # The shopper's Stripe Customer the PaymentIntent was given (None: none).
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    # The Stripe Checkout Session that made this PaymentIntent (None: the API's own).
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)

    # `payment_summary` is the seam OrderSchema reads for the Order's `payment` field.
    order: Mapped[Order] = relationship(backref=backref("payment_summary", uselist=False))


# `failed`: the session completed with a delayed payment method whose payment then failed
# (never for a card: sessions take cards only); the order is payable again.
CHECKOUT_STATUSES = ("open", "complete", "expired", "failed")


class CheckoutSession(db.Model):
    """A Stripe Checkout Session paying an order. An order has at most one open session and,
    while it does, no PaymentIntent of the API's own (see payments.checkout)."""

    __tablename__ = "checkout_sessions"
    __table_args__ = (
        CheckConstraint(_in("status", CHECKOUT_STATUSES), name="status"),
        Index("ix_checkout_sessions_order_id_status", "order_id", "status"),
    )

    id: Mapped[str] = id_column("chk")
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), nullable=False)
    # How many sessions the order had before this one (the Stripe idempotency key's part).
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    stripe_session_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


class Refund(db.Model):
    """A refund of (part of) an order, allocated across its vendor splits."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_in("reason", REFUND_REASONS), name="reason"),
        CheckConstraint(_in("status", REFUND_STATUSES), name="status"),
        Index("ix_refunds_amount_created_at", "amount", "created_at"),  # admin search by amount
    )

    id: Mapped[str] = id_column("rfd")
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), nullable=False)
    # The admin who asked for it; None for a refund made outside the API (Stripe's Dashboard).
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="pending")
    # [{order_item_id, quantity, amount}] when refunded by items; [] otherwise.
    items: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Stripe's refund status as last seen (pending while Stripe holds it, succeeded, failed).
    stripe_status: Mapped[str | None] = mapped_column(String(24))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)

    allocations: Mapped[list[RefundAllocation]] = relationship(
        back_populates="refund", order_by="RefundAllocation.position", cascade="all, delete-orphan"
    )


class RefundAllocation(db.Model):
    """One vendor's part of a refund: what the shopper gets back, the fee returned, the reversal."""

    __tablename__ = "refund_allocations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("platform_fee_refunded >= 0", name="fee_not_negative"),
    )

    id: Mapped[str] = id_column("ral")
    refund_id: Mapped[str] = mapped_column(ForeignKey("refunds.id"), nullable=False, index=True)
    split_id: Mapped[str] = mapped_column(ForeignKey("order_splits.id"), nullable=False, index=True)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    platform_fee_refunded: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stripe_transfer_reversal_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The transfer giving the vendor back what the reversal took, when the refund failed.
    stripe_retransfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Destination charges: the reversal of an earlier failed refund's retransfer, taking back
    # what Stripe's own reversal could not (the original transfer was short by that much);
    # `none-<allocation id>` when nothing was short.
    stripe_shortfall_reversal_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    refund: Mapped[Refund] = relationship(back_populates="allocations")
    split: Mapped[OrderSplit] = relationship()

    @property
    def reversal_amount(self) -> int:
        """What is taken back from the vendor: its share of the refund less the fee returned."""
        return self.amount - self.platform_fee_refunded


class Dispute(db.Model):
    """A chargeback on an order's charge, and what was recovered from the vendors meanwhile."""

    __tablename__ = "disputes"
    __table_args__ = (CheckConstraint(_in("recovery", DISPUTE_RECOVERIES), name="recovery"),)

    id: Mapped[str] = id_column("dsp")
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), nullable=False)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    stripe_charge_id: Mapped[str] = mapped_column(String(255), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    recovery: Mapped[str] = mapped_column(String(16), nullable=False)
    order_status_before: Mapped[str] = mapped_column(String(24), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)

    recoveries: Mapped[list[DisputeRecovery]] = relationship(
        back_populates="dispute", order_by="DisputeRecovery.position", cascade="all, delete-orphan"
    )


class DisputeRecovery(db.Model):
    """A vendor's share taken back while a dispute is open, and given back if it is won."""

    __tablename__ = "dispute_recoveries"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[str] = id_column("drc")
    dispute_id: Mapped[str] = mapped_column(ForeignKey("disputes.id"), nullable=False, index=True)
    split_id: Mapped[str] = mapped_column(ForeignKey("order_splits.id"), nullable=False)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stripe_transfer_reversal_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_retransfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    dispute: Mapped[Dispute] = relationship(back_populates="recoveries")
    split: Mapped[OrderSplit] = relationship()
