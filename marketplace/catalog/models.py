"""Products a vendor sells, priced in integer minor units."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("recurring_interval IS NULL OR (recurring_interval IN ('month', 'year') "
                        "AND recurring_interval_count BETWEEN 1 AND 12)", name="recurring"),
    )

    @property
    def recurring(self) -> dict | None:
        """`{interval, interval_count}` for a product sold by subscription, else None."""
        if self.recurring_interval is None:
            return None
        return {"interval": self.recurring_interval, "interval_count": self.recurring_interval_count}

    id: Mapped[str] = id_column("prd")
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    stock: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # A recurring product is sold by subscription: billed every `recurring_interval_count`
    # months or years at `price` (subscriptions.prices keeps its Stripe Product and Price).
    recurring_interval: Mapped[str | None] = mapped_column(String(8))
    recurring_interval_count: Mapped[int | None] = mapped_column(Integer)
    stripe_product_id: Mapped[str | None] = mapped_column(String(255))
    # The Stripe Price of the product's current terms, and the terms it was made for: a new
    # Price when they change (a Price's amount and interval never change at Stripe).
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    stripe_price_terms: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
