"""The audit log: who did what to which money, written in the same transaction as the action."""
from __future__ import annotations

from datetime import datetime

from flask import g, has_request_context
from sqlalchemy import BigInteger, Index, String, select
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import UTCDateTime, id_column, utcnow
from marketplace.extensions import db
from marketplace.pagination import paginate

SYSTEM = "system"


class AuditEntry(db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_object", "object_type", "object_id"),
    )

    id: Mapped[str] = id_column("aud")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(60), nullable=False)
    action: Mapped[str] = mapped_column(String(80), nullable=False)
    object_type: Mapped[str] = mapped_column(String(40), nullable=False)
    object_id: Mapped[str] = mapped_column(String(255), nullable=False)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    request_id: Mapped[str | None] = mapped_column(String(128))


def current_actor() -> str:
    """The signed-in user's id inside a request, else `system` (jobs, webhooks, CLI)."""
    if has_request_context():
        user = g.get("current_user")
        if user is not None:
            return user.id
    return SYSTEM


def record(action: str, object_type: str, object_id: str, *, amount: int | None = None,
           currency: str | None = None, actor: str | None = None) -> AuditEntry:
    """Add an audit entry to the caller's transaction (it commits or rolls back with the action)."""
    entry = AuditEntry(
        actor=actor or current_actor(), action=action, object_type=object_type, object_id=object_id,
        amount=amount, currency=currency,
        request_id=g.get("request_id") if has_request_context() else None,
    )
    db.session.add(entry)
    return entry


def list_entries(page: int, per_page: int, action: str | None = None, object_type: str | None = None,
                 object_id: str | None = None, actor: str | None = None) -> dict:
    """Newest first, filtered."""
    stmt = select(AuditEntry)
    for column, value in (("action", action), ("object_type", object_type),
                          ("object_id", object_id), ("actor", actor)):
        if value:
            stmt = stmt.where(getattr(AuditEntry, column) == value)
    return paginate(stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()), page, per_page).as_dict()
