"""Registration, password checks and opaque bearer tokens."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
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
    expires_at = utcnow() + timedelta(seconds=current_app.config["TOKEN_TTL_SECONDS"])
    db.session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), expires_at=expires_at))
    db.session.commit()
    return IssuedToken(token=token, expires_at=expires_at)


def user_for_token(token: str) -> User | None:
    """The user a live token belongs to, or None for unknown or expired tokens."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.expires_at <= utcnow():
        return None
    return row.user


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("auth_dummy_hash", {})
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in cache:
        cache[method] = generate_password_hash(secrets.token_hex(16), method=method)
    return cache[method]
