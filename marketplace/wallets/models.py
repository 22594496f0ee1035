"""Shoppers' wallets: one Stripe Customer per shopper and the cards saved on it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db


class Customer(db.Model):
    """The shopper's Stripe Customer. The row is made (without a Stripe id) before Stripe is
    asked, and locked while it is: concurrent first uses wait for one Customer."""

    __tablename__ = "customers"

    id: Mapped[str] = id_column("cst")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), unique=True, nullable=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The email Stripe has for the Customer (kept equal to the user's).
    email: Mapped[str | None] = mapped_column(String(254))
    default_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    # Cards removed from the Customer so far: part of the key of attaching one (again).
    removed_payment_methods: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


class SavedPaymentMethod(db.Model):
    """A card attached to a shopper's Customer, as Stripe described it (never the number)."""

    __tablename__ = "saved_payment_methods"

    stripe_payment_method_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), nullable=False)
    brand: Mapped[str | None] = mapped_column(String(32))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()
