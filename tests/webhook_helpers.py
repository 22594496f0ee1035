"""Signed Stripe events for the webhook tests."""
from __future__ import annotations

import itertools
import json
import time

import stripe

SECRET = "whsec_emulator"
PATH = "/api/webhooks/stripe"
_ids = itertools.count(1)


def event(type_: str = "customer.created", obj: dict | None = None, account: str | None = None,
          livemode: bool = False, **extra) -> dict:
    """A Stripe event envelope with a fresh id."""
    body = {
        "id": f"evt_test_{next(_ids):06d}_{int(time.time() * 1000)}", "object": "event", "type": type_,
        "created": int(time.time()), "livemode": livemode, "pending_webhooks": 1,
        "api_version": "2024-06-20", "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj or {"id": "cus_1", "object": "customer"}},
    }
    if account:
        body["account"] = account
    body.update(extra)
    return body


def signed(payload: dict | str, secret: str = SECRET, timestamp: int | None = None) -> tuple[bytes, dict]:
    """(raw body, headers) as Stripe sends them."""
    raw = payload if isinstance(payload, str) else json.dumps(payload, indent=2)
    header = stripe.WebhookSignature.generate_signature_header(raw, secret, timestamp=timestamp)
    return raw.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def deliver(client, payload: dict | str, secret: str = SECRET, timestamp: int | None = None):
    """POST a signed event to the endpoint with the Flask test client."""
    raw, headers = signed(payload, secret, timestamp)
    return client.post(PATH, data=raw, headers=headers)
