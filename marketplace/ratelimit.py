"""Rate limits (flask-limiter): Redis storage when REDIS_URL is set, memory otherwise.

Limits are read from config at request time, so each deployment (and each test) sets
its own. A breach is a 429 in the error envelope with Retry-After.
"""
from __future__ import annotations

import hashlib

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address


def client_key() -> str:
    """Per bearer token when there is one (a user), else per client IP."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "tok:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "ip:" + (get_remote_address() or "unknown")


def ip_key() -> str:
    return "ip:" + (get_remote_address() or "unknown")


def configured(name: str):
    """A limit string taken from config at request time, e.g. configured('RATELIMIT_TOKENS')."""
    return lambda: current_app.config[name]


limiter = Limiter(key_func=client_key, headers_enabled=True)

# Endpoints no limit applies to, decided before any limit is resolved.
UNLIMITED_ENDPOINTS = frozenset({
    "webhooks.receive_stripe_event",  # Stripe's deliveries: signed, retried by Stripe, never to be 429'd
})


@limiter.request_filter
def _unlimited() -> bool:
    return request.endpoint in UNLIMITED_ENDPOINTS


def register_rate_limits(app: Flask) -> None:
    """Bind the limiter; storage follows REDIS_URL."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "marketplace-rl")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)  # Redis down must not take checkout down
    limiter.init_app(app)
