"""Velocity checks at checkout: too many orders or failed payments, per shopper or per IP.

Counters live in their own `limits` storage (Redis when REDIS_URL is set, so every web
process sees the same counts; memory otherwise), over a moving window: they work whatever
RATELIMIT_ENABLED says, since turning off rate limits must not turn off fraud checks. A
refusal is a 429 and an audit entry. The IP is the client's as ProxyFix sees it
(TRUSTED_PROXIES), never a proxy's.
"""
from __future__ import annotations

import logging
import time

from flask import Flask, current_app, has_request_context, request
from limits import parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from marketplace import audit
from marketplace.errors import AppError
from marketplace.extensions import db

log = logging.getLogger(__name__)


class CheckoutRefused(AppError):
    status, code = 429, "checkout_refused"
    message = "Too many orders or failed payments recently; try again later."


def _keys(user_id: str) -> list[str]:
    keys = [f"user:{user_id}"]
    if has_request_context() and request.remote_addr:
        keys.append(f"ip:{request.remote_addr}")
    return keys


def register_fraud_checks(app: Flask) -> None:
    """The counters' storage: the app's Redis, or this process's memory without one."""
    uri = app.config.get("REDIS_URL") or "memory://"
    app.extensions["fraud"] = MovingWindowRateLimiter(storage_from_string(uri, key_prefix="marketplace-fraud"))


def _counter() -> MovingWindowRateLimiter:
    return current_app.extensions["fraud"]


def _limit(name: str):
    cfg = current_app.config
    return parse(f"{cfg[name]} per {cfg['FRAUD_WINDOW_SECONDS']} second")


def _refuse(user_id: str, kind: str, key: str, limit) -> None:
    db.session.rollback()
    audit.record(f"fraud.checkout_refused.{kind}", "user", user_id)
    db.session.commit()
    reset = _counter().get_window_stats(limit, "fraud", kind, key).reset_time
    retry_after = max(1, int(reset - time.time()))
    raise CheckoutRefused(details={"reason": kind}, headers={"Retry-After": str(retry_after)})


def check_order_velocity(user_id: str) -> None:
    """Count an order attempt; refuse once a shopper or IP passes FRAUD_MAX_ORDERS in the window."""
    limit = _limit("FRAUD_MAX_ORDERS")
    for key in _keys(user_id):
        if not _counted(lambda: _counter().hit(limit, "fraud", "orders", key)):
            _refuse(user_id, "orders", key, limit)


def check_failed_payments(user_id: str) -> None:
    """Refuse checkout once a shopper or IP has FRAUD_MAX_FAILED_PAYMENTS failures in the window."""
    limit = _limit("FRAUD_MAX_FAILED_PAYMENTS")
    for key in _keys(user_id):
        if not _counted(lambda: _counter().test(limit, "fraud", "failed_payments", key)):
            _refuse(user_id, "failed_payments", key, limit)


def record_failed_payment(user_id: str) -> None:
    """Count a declined payment against the shopper and the IP."""
    limit = _limit("FRAUD_MAX_FAILED_PAYMENTS")
    for key in _keys(user_id):
        _counted(lambda: _counter().hit(limit, "fraud", "failed_payments", key))


def _counted(count) -> bool:
    """A counter's answer; True (allowed) when its storage cannot answer, as the rate
    limits do: Redis being down must not take checkout down. Logged, never silent."""
    try:
        return count()
    except (StorageError, RedisError, OSError) as error:
        log.warning("fraud counters unavailable (%s): checkout allowed", type(error).__name__)
        return True
