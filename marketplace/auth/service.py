"""Registration, password checks and opaque bearer tokens."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from marketplace import audit
from marketplace.auth.models import ApiToken, User
from marketplace.database import utcnow
from marketplace.errors import AppError, Conflict
from marketplace.extensions import db

TOKEN_PREFIX = "mkt_"


class InvalidCredentials(AppError):
    status, code, message = 401, "invalid_credentials", "Invalid email or password."


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively."""
    return email.strip().lower()


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so one SHA-256 suffices (no KDF needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def create_user(email: str, password: str, role: str) -> User:
    """Register a user; 409 email_taken if the address is in use (race-safe)."""
    user = User(email=normalize_email(email), password_hash=_hash_password(password), role=role)
    db.session.add(user)
    try:
        db.session.flush()
        if role == "admin":
            audit.record("user.admin_created", "user", user.id)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("This email is already registered.", code="email_taken") from None
    return user


def issue_token(email: str, password: str) -> IssuedToken:
    """Exchange credentials for a token; one answer for unknown email and wrong password."""
    user = db.session.scalar(select(User).where(User.email == normalize_email(email)))
    # Hash even for unknown emails so timing does not reveal which emails exist.
    stored = user.password_hash if user else _dummy_hash()
    if not check_password_hash(stored, password) or user is None:
        raise InvalidCredentials()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(seconds=current_app.config["TOKEN_TTL_SECONDS"])
    _make_room(user, now)
    db.session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), expires_at=expires_at))
    db.session.commit()
    return IssuedToken(token=token, expires_at=expires_at)


def _make_room(user: User, now: datetime) -> None:
    """Forget the user's expired tokens and revoke the oldest live ones beyond
    TOKEN_MAX_PER_USER - 1, so the one being issued keeps the count at the cap. The user's
    row is locked first: concurrent logins of one user take turns and cannot pass the cap."""
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    db.session.execute(delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at <= now))
    keep = current_app.config["TOKEN_MAX_PER_USER"] - 1
    live = list(db.session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ))
    for token_id in live[keep:]:
        db.session.execute(delete(ApiToken).where(ApiToken.id == token_id))
        audit.record("token.revoked_oldest", "token", token_id, actor=user.id)


def token_for(token: str) -> ApiToken | None:
    """The live token row a bearer token names, or None for unknown, revoked or expired tokens."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.expires_at <= utcnow():
        return None
    return row


def revoke_token(user: User, token_id: str) -> None:
    """Revoke one of the user's tokens (the row goes: a revoked token names nothing)."""
    db.session.execute(delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    audit.record("token.revoked", "token", token_id)
    db.session.commit()


def revoke_all_tokens(user: User) -> int:
    """Revoke every token of the user; returns how many there were."""
    result = db.session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    audit.record("token.revoked_all", "user", user.id)
    db.session.commit()
    return result.rowcount or 0


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("auth_dummy_hash", {})
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in cache:
        cache[method] = generate_password_hash(secrets.token_hex(16), method=method)
    return cache[method]
