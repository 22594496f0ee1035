"""The parameters of a Stripe request, fixed before it is first sent under its idempotency key.

Stripe replays the answer of a key only for the parameters it was first used with; the same
key with other parameters is refused (`idempotency_error`) for the key's 24 hours. A request
whose parameters depend on the moment (a Checkout Session's `expires_at`) or on what may
change meanwhile (the shopper's email, the Customer made since) is therefore frozen here, in a
transaction committed before the call: a retry after a lost answer sends exactly what the
first attempt sent, and Stripe answers with what it made then.

A request Stripe refused at validation was never carried out and saved nothing for its key
(Stripe keeps no result for it): its parameters may be `forget`-ten and made again.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import JSON, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.database import created_at_column, insert_new, utcnow
from marketplace.extensions import db


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
