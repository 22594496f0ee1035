"""Orders, their lines and their per-vendor splits (fees frozen at creation)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db

STATUSES = (
    "pending_payment", "processing", "paid", "payment_failed", "partially_refunded",
    "refunded", "disputed", "canceled",
)
CANCELABLE = ("pending_payment", "payment_failed")
CHARGE_TYPES = ("destination", "separate_transfers")
SPLIT_STATUSES = ("pending", "transferred", "reversed", "canceled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("charge_type", CHARGE_TYPES), name="charge_type"),
        CheckConstraint("subtotal > 0 AND total = subtotal", name="total"),
        CheckConstraint("platform_fee >= 0 AND platform_fee <= total", name="platform_fee"),
        Index("ix_orders_shopper_id_created_at", "shopper_id", "created_at"),
        Index("ix_orders_status_created_at", "status", "created_at"),
        Index("ix_orders_total_created_at", "total", "created_at"),  # admin search by amount
    )

    id: Mapped[str] = id_column("ord")
    shopper_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="pending_payment")
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    subtotal: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)
    platform_fee: Mapped[int] = mapped_column(BigInteger, nullable=False)
    charge_type: Mapped[str] = mapped_column(String(24), nullable=False)
    # Seam for the payments work: the PaymentIntent that charges this order, once made.
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Set once when reserved stock goes back to the shelf, so it never goes back twice.
    stock_released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An order made for a subscription's paid invoice (never a shopper's cart): booked,
    # refunded, paid out and reconciled as any destination charge.
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.position", cascade="all, delete-orphan"
    )
    splits: Mapped[list[OrderSplit]] = relationship(
        back_populates="order", order_by="OrderSplit.position", cascade="all, delete-orphan"
    )


class OrderItem(db.Model):
    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price > 0", name="unit_price_positive"),
        CheckConstraint("amount = unit_price * quantity", name="amount"),
    )

    id: Mapped[str] = id_column("oit")
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    split_id: Mapped[str] = mapped_column(ForeignKey("order_splits.id"), nullable=False, index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), nullable=False, index=True)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)

    order: Mapped[Order] = relationship(back_populates="items")
    split: Mapped[OrderSplit] = relationship()


class OrderSplit(db.Model):
    """One vendor's share of an order; the fee policy used is stored beside the fee."""

    __tablename__ = "order_splits"
    __table_args__ = (
        UniqueConstraint("order_id", "vendor_id"),
        CheckConstraint(_in("status", SPLIT_STATUSES), name="status"),
        CheckConstraint("subtotal > 0", name="subtotal_positive"),
        CheckConstraint("platform_fee >= 0 AND platform_fee <= subtotal", name="platform_fee"),
        CheckConstraint("vendor_net = subtotal - platform_fee", name="vendor_net"),
        CheckConstraint("percent_bps >= 0 AND percent_bps <= 10000", name="percent_bps"),
        CheckConstraint("fixed >= 0", name="fixed_not_negative"),
        CheckConstraint("refunded >= 0 AND refunded <= subtotal", name="refunded"),
        Index("ix_order_splits_vendor_id_created_at", "vendor_id", "created_at"),
    )

    id: Mapped[str] = id_column("spl")
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), nullable=False)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    subtotal: Mapped[int] = mapped_column(BigInteger, nullable=False)
    percent_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    fixed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    platform_fee: Mapped[int] = mapped_column(BigInteger, nullable=False)
    vendor_net: Mapped[int] = mapped_column(BigInteger, nullable=False)
    refunded: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = created_at_column()

    order: Mapped[Order] = relationship(back_populates="splits")
