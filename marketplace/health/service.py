"""Readiness probes for the database and Redis."""
from __future__ import annotations

from sqlalchemy import text

from marketplace import queue
from marketplace.extensions import db


def check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return "ok"
    except Exception:  # a readiness probe reports failure; it never raises
        db.session.rollback()
        return "unreachable"


def check_redis() -> str:
    if queue.is_inline():
        return "not_configured"
    try:
        queue.get_redis().ping()
        return "ok"
    except Exception:  # same: report, do not raise
        return "unreachable"


def readiness() -> dict[str, str]:
    """Each dependency's state: ok, unreachable or not_configured."""
    return {"database": check_database(), "redis": check_redis()}

