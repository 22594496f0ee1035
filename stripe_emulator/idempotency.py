"""Idempotency keys as Stripe keeps them: per API key and account, replayed for 24 hours."""
import threading

from .errors import StripeError

TTL = 24 * 3600


class IdempotencyStore:
    """First results of POST requests by (api key, account, idempotency key)."""

    def __init__(self, clock):
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = {}

    def clear(self):
        """Forget every key."""
        with self._lock:
            self._entries.clear()

    def begin(self, scope, fingerprint):
        """The stored entry to replay, or None after reserving the key for this request."""
        now = self._clock.now()
        with self._lock:
            entry = self._entries.get(scope)
            if entry is not None and now - entry["created"] > TTL:
                entry = None
            if entry is None:
                if len(self._entries) % 1000 == 999:
                    self._sweep(now)
                self._entries[scope] = {"fingerprint": fingerprint, "created": now,
                                        "done": False}
                return None
            if entry["fingerprint"] != fingerprint:
                raise StripeError(
                    "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with. Try using a key other than "
                    "'%s' if you meant to execute a different request." % scope[-1],
                    type="idempotency_error", status=400, saved=False,
                    headers={"Stripe-Should-Retry": "false"})
            if not entry["done"]:
                raise StripeError(
                    "There is currently another in-progress request using this "
                    "Idempotent Key (that probably means you submitted twice, and the "
                    "other request is still going through): %s. Please try again later."
                    % scope[-1], code="idempotency_key_in_use", type="idempotency_error",
                    status=409, saved=False, headers={"Stripe-Should-Retry": "true"})
            return entry

    def _sweep(self, now):
        # the stripe package sends a fresh key with every POST: drop expired ones
        expired = [k for k, e in self._entries.items() if now - e["created"] > TTL]
        for key in expired:
            del self._entries[key]

    def finish(self, scope, status, body, request_id):
        """Store the first answer for replay."""
        with self._lock:
            entry = self._entries.get(scope)
            if entry is not None:
                entry.update(done=True, status=status, body=body, request_id=request_id)

    def abandon(self, scope):
        """Release a key whose request must not be remembered (validation error, fault)."""
        with self._lock:
            entry = self._entries.get(scope)
            if entry is not None and not entry["done"]:
                del self._entries[scope]
