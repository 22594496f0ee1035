"""The parameters of a Stripe request, fixed before it is first sent under its idempotency key.

Stripe replays the answer of a key only for the parameters it was first used with; the same
key with other parameters is refused (`idempotency_error`) for the key's 24 hours. A request
whose parameters depend on the moment (a Checkout Session's `expires_at`) or on what may
change meanwhile (the shopper's email, the Customer made since) is therefore frozen here, in a
transaction committed before the call: a retry after a lost answer sends exactly what the
first attempt sent, and Stripe answers with what it made then.

A request Stripe refused for its parameters was never carried out and saved nothing for its
key (`StripeFailure.refused_parameters`): its parameters may be `forget`-ten, by the caller
that saw the refusal while it still holds the lock it sent the request under, and made
again. Any other refusal keeps them: Stripe may have saved its result under the key. Rows are
reaped two days after they were made, when Stripe has long forgotten the key.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import JSON, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import created_at_column, insert_new, utcnow
from marketplace.extensions import db

# Stripe keeps a key's answer 24 hours; the parameters are kept twice as long.
KEPT = timedelta(hours=48)


class StripeRequest(db.Model):
    """What was (or is about to be) sent to Stripe under one idempotency key."""

    __tablename__ = "stripe_requests"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    params: Mapped[dict] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = created_at_column()


def freeze(key: str, make: Callable[[], dict]) -> dict:
    """The parameters of the request sent under `key`: those stored first, else `make()`'s,
    stored now (in the caller's transaction, which must commit before the call)."""
    stored = frozen(key)
    if stored is not None:
        return stored
    db.session.execute(insert_new(StripeRequest.__table__, "idempotency_key",
                                  idempotency_key=key, params=make(), created_at=utcnow()))
    return frozen(key)


def frozen(key: str) -> dict | None:
    """The parameters stored for `key`, if any."""
    return db.session.scalar(select(StripeRequest.params).where(StripeRequest.idempotency_key == key))


def forget(key: str) -> None:
    """Stripe refused the request at validation (nothing was kept for the key): its
    parameters may be made again."""
    db.session.execute(delete(StripeRequest).where(StripeRequest.idempotency_key == key))


def reap(now: datetime | None = None) -> int:
    """Delete the parameters of requests made more than KEPT ago; returns how many."""
    cutoff = (now or utcnow()) - KEPT
    gone = db.session.execute(delete(StripeRequest).where(StripeRequest.created_at < cutoff)).rowcount
    db.session.commit()
    return gone


def send(call: Callable[[dict, str], dict], params: dict, key: str) -> dict:
    """`call(params, key)`, made with the lock the caller sent it under still held: a
    refusal of its parameters forgets them (committed, so the next try asks afresh); any
    other outcome keeps them."""
    from marketplace.errors import ValidationFailed
    from marketplace.stripe_gateway import StripeFailure

    try:
        return call(params, key)
    except (StripeFailure, ValidationFailed) as refused:
        # ValidationFailed: a parameter the client gave (an email) refused by Stripe.
        if isinstance(refused, ValidationFailed) or refused.refused_parameters:
            forget(key)
            db.session.commit()
        raise
