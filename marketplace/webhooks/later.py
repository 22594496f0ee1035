"""Putting an event off: a handler that raises `Later` while the event is `fresh()` has it
handled again a moment later, with no attempt spent (webhooks.service.process_event).

For an event that races the request whose answer usually records the same thing (a
PaymentIntent's success, sent by Stripe while its confirmation is still being answered):
handled a moment later it needs no read of Stripe; handled at once it would.
"""
from __future__ import annotations

from datetime import timedelta

from flask import g

from marketplace.database import utcnow

# How long after its receipt an event may still be put off.
FRESH_FOR = timedelta(seconds=2)


class Later(Exception):
    """Handle the event again `delay` from now; the message says why."""

    def __init__(self, delay: timedelta, reason: str):
        super().__init__(reason)
        self.delay = delay


def fresh() -> bool:
    """The event being handled (by a worker's job, not inline) was received moments ago."""
    received = g.get("event_received_at")
    return received is not None and utcnow() - received < FRESH_FOR
