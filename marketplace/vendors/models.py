"""Vendors: a user's selling profile tied to a Stripe Express connected account."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, BigInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.extensions import db

STATUSES = ("onboarding", "active", "restricted", "suspended")


class Vendor(db.Model):
    __tablename__ = "vendors"
    __table_args__ = (
        CheckConstraint(
            "status IN ('onboarding', 'active', 'restricted', 'suspended')", name="status"
        ),
        CheckConstraint(
            "fee_percent_bps IS NULL OR (fee_percent_bps >= 0 AND fee_percent_bps <= 10000)",
            name="fee_percent_bps",
        ),
        CheckConstraint("fee_fixed IS NULL OR fee_fixed >= 0", name="fee_fixed"),
    )

    id: Mapped[str] = id_column("ven")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    country: Mapped[str] = mapped_column(String(2), nullable=False)
    email: Mapped[str] = mapped_column(String(254), nullable=False)
    stripe_account_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="onboarding")
    # An admin decision kept apart from the account's state: no account update lifts it.
    suspended: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    requirements_due: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    # Both NULL: the platform default applies (PLATFORM_FEE_BPS, PLATFORM_FEE_FIXED).
    fee_percent_bps: Mapped[int | None] = mapped_column(Integer)
    fee_fixed: Mapped[int | None] = mapped_column(BigInteger)
    account_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )

    @property
    def can_sell(self) -> bool:
        """Only a vendor whose account can take charges, and who is not suspended, sells."""
        return self.charges_enabled and not self.suspended and self.stripe_account_id is not None


# Admin search finds a vendor by its contact email in any case (users' emails are stored normalized).
Index("ix_vendors_lower_email", func.lower(Vendor.email))
