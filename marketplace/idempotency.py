"""The API-wide `Idempotency-Key` header (API.md), in the manner of rocket-rides-atomic.

A key is scoped to its user. The first request with a key locks it (`locked_at`),
runs, and stores its response; a repeat with the same body gets that response again
with `Idempotent-Replayed: true`; a repeat with another body is 422
`idempotency_key_reused`; a repeat while the first still runs is 409
`idempotency_key_in_use`. Responses of 500 and above are not stored: the key is
unlocked so the client can retry.

Crash safety: a service that creates something calls `bind(kind, id)` inside its own
transaction, which records the recovery point on the key row atomically with the
change. If the process dies before the response is stored, the retry (after the lock
goes stale) finds `recovered(kind)` and returns the existing object instead of
creating a second one.
"""
from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime, timedelta

from flask import Response, g, make_response, request
from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.exceptions import HTTPException

from marketplace import input_guard
from marketplace.database import UTCDateTime, created_at_column, id_column, utcnow
from marketplace.errors import AppError, Conflict, ValidationFailed, handle_app_error, handle_http_exception
from marketplace.extensions import db

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEY_TTL = timedelta(hours=24)
LOCK_TIMEOUT = timedelta(seconds=90)
STARTED = "started"
FINISHED = "finished"


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"), Index("ix_idempotency_keys_created_at", "created_at"))

    id: Mapped[str] = id_column("idk")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), nullable=False)
    request_method: Mapped[str] = mapped_column(String(10), nullable=False)
    request_path: Mapped[str] = mapped_column(String(500), nullable=False)
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recovery_point: Mapped[str] = mapped_column(String(120), nullable=False, default=STARTED)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_content_type: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


def idempotent(view):
    """Make a POST route honour Idempotency-Key; place it under `@blp.auth(...)`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        row_or_response = _acquire(key)
        if isinstance(row_or_response, Response):
            return row_or_response
        g.idempotency_key_id = row_or_response
        try:
            return _run_and_store(row_or_response, view, args, kwargs)
        finally:  # the key is this request's only (an outliving app context must not lend it)
            g.pop("idempotency_key_id", None)

    return wrapper


def bind(kind: str, object_id: str) -> None:
    """Record, in the caller's transaction, what this request created (its recovery point)."""
    row = _current_row()
    if row is not None:
        row.recovery_point = f"{kind}:{object_id}"


def recovered(kind: str) -> str | None:
    """The id of the `kind` object an earlier attempt with this key created, if any."""
    row = _current_row()
    prefix = f"{kind}:"
    if row is not None and row.recovery_point.startswith(prefix):
        return row.recovery_point[len(prefix):]
    return None


def reap(now: datetime | None = None) -> int:
    """Delete keys older than 24 h; returns how many went."""
    cutoff = (now or utcnow()) - KEY_TTL
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    db.session.commit()
    return result.rowcount or 0


def _current_row() -> IdempotencyKey | None:
    key_id = g.get("idempotency_key_id")
    return db.session.get(IdempotencyKey, key_id) if key_id else None


def _fingerprint() -> str:
    raw = request.get_data(cache=True)
    try:
        canonical = json.dumps(input_guard.loads(raw or b"null"), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), canonical):
        digest.update(part + b"\0")
    return digest.hexdigest()


def _acquire(key: str) -> str | Response:
    """Lock the key for this request (returns its row id) or answer from it."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(details={HEADER: [f"Must be 1 to {MAX_KEY_LENGTH} characters."]})
    user_id = g.current_user.id
    fingerprint = _fingerprint()
    now = utcnow()
    row = IdempotencyKey(user_id=user_id, key=key, request_method=request.method, request_path=request.path,
                         request_fingerprint=fingerprint, locked_at=now, last_run_at=now)
    db.session.add(row)
    try:
        db.session.commit()
        return row.id
    except IntegrityError:
        db.session.rollback()
    row = db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key).with_for_update()
    )
    try:
        return _resume(row, fingerprint, now)
    finally:
        db.session.commit()


def _resume(row: IdempotencyKey, fingerprint: str, now: datetime) -> str | Response:
    if row.created_at < now - KEY_TTL:
        # An expired key starts afresh, as if it had been reaped.
        row.request_fingerprint, row.recovery_point = fingerprint, STARTED
        row.response_status = row.response_body = row.response_content_type = None
        row.created_at = now
    elif row.request_fingerprint != fingerprint:
        raise ValidationFailed("This Idempotency-Key was used with a different request.",
                               code="idempotency_key_reused")
    elif row.response_status is not None:
        response = make_response(row.response_body, row.response_status)
        response.content_type = row.response_content_type or "application/json"
        response.headers["Idempotent-Replayed"] = "true"
        return response
    elif row.locked_at is not None and row.locked_at > now - LOCK_TIMEOUT:
        raise Conflict("A request with this Idempotency-Key is still being processed.",
                       code="idempotency_key_in_use")
    row.locked_at = now
    row.last_run_at = now
    return row.id


def _run_and_store(key_id: str, view, args, kwargs) -> Response:
    try:
        response = make_response(view(*args, **kwargs))
    except AppError as exc:
        db.session.rollback()
        response = handle_app_error(exc)
    except HTTPException as exc:
        db.session.rollback()
        response = make_response(handle_http_exception(exc))
    except Exception:
        db.session.rollback()
        _unlock(key_id)
        raise
    if response.status_code >= 500:
        _unlock(key_id)
        return response
    row = db.session.get(IdempotencyKey, key_id)
    row.response_status = response.status_code
    row.response_body = response.get_data(as_text=True)
    row.response_content_type = response.content_type
    row.recovery_point = FINISHED
    row.locked_at = None
    db.session.commit()
    return response


def _unlock(key_id: str) -> None:
    row = db.session.get(IdempotencyKey, key_id)
    if row is not None:
        row.locked_at = None
        db.session.commit()
