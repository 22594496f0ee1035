"""Velocity checks at checkout: too many orders or failed payments, per shopper or per IP.

Counters live in the rate limiter's storage (Redis when REDIS_URL is set, so every web
process sees the same counts; memory otherwise). A refusal is a 429 and an audit entry.
"""
from __future__ import annotations

import time

from flask import current_app, has_request_context, request
from limits import parse

from marketplace import audit
from marketplace.errors import AppError
from marketplace.extensions import db
from marketplace.ratelimit import limiter


class CheckoutRefused(AppError):
    status, code = 429, "checkout_refused"
    message = "Too many orders or failed payments recently; try again later."


def _keys(user_id: str) -> list[str]:
    keys = [f"user:{user_id}"]
    if has_request_context() and request.remote_addr:
        keys.append(f"ip:{request.remote_addr}")
    return keys


def _limit(name: str):
    cfg = current_app.config
    return parse(f"{cfg[name]} per {cfg['FRAUD_WINDOW_SECONDS']} second")


def _refuse(user_id: str, kind: str, key: str, limit) -> None:
    db.session.rollback()
    audit.record(f"fraud.checkout_refused.{kind}", "user", user_id)
    db.session.commit()
    reset = limiter.limiter.get_window_stats(limit, "fraud", kind, key).reset_time
    retry_after = max(1, int(reset - time.time()))
    raise CheckoutRefused(details={"reason": kind}, headers={"Retry-After": str(retry_after)})


def check_order_velocity(user_id: str) -> None:
    """Count an order attempt; refuse once a shopper or IP passes FRAUD_MAX_ORDERS in the window."""
    limit = _limit("FRAUD_MAX_ORDERS")
    for key in _keys(user_id):
        if not limiter.limiter.hit(limit, "fraud", "orders", key):
            _refuse(user_id, "orders", key, limit)


def check_failed_payments(user_id: str) -> None:
    """Refuse checkout once a shopper or IP has FRAUD_MAX_FAILED_PAYMENTS failures in the window."""
    limit = _limit("FRAUD_MAX_FAILED_PAYMENTS")
    for key in _keys(user_id):
        if not limiter.limiter.test(limit, "fraud", "failed_payments", key):
            _refuse(user_id, "failed_payments", key, limit)


def record_failed_payment(user_id: str) -> None:
    """Count a declined payment against the shopper and the IP."""
    limit = _limit("FRAUD_MAX_FAILED_PAYMENTS")
    for key in _keys(user_id):
        limiter.limiter.hit(limit, "fraud", "failed_payments", key)
