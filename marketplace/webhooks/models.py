"""One row per Stripe event, whatever the number of deliveries (raw body kept)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, id_column, utcnow
from marketplace.extensions import db

STATUSES = ("received", "processed", "failed", "ignored")
SOURCES = ("webhook", "sync")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class WebhookEvent(db.Model):
    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("source", SOURCES), name="source"),
        Index("ix_webhook_events_status_received_at", "status", "received_at"),
        Index("ix_webhook_events_type_received_at", "type", "received_at"),
    )

    id: Mapped[str] = id_column("whe")
    # The unique constraint is what makes storage race-safe: two deliveries, one row.
    stripe_event_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    account: Mapped[str | None] = mapped_column(String(255))
    livemode: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    api_version: Mapped[str | None] = mapped_column(String(40))
    stripe_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="webhook")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="received")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Why an event was ignored (unknown type, no handler yet); kept apart from errors.
    reason: Mapped[str | None] = mapped_column(String(500))
    raw_body: Mapped[str] = mapped_column(Text, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the retry after a failed attempt is due (null: the first attempt, due on receipt).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Held by the attempt running now: no other run takes the event before this passes.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
