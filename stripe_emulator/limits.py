"""Per-call latency and Stripe's request rate limits, for benchmarks.

Latency: every API request is answered `latency_seconds` after it was served (the work is
done at once; only the answer waits, on the request's own thread, so other requests go on).

Rate limits: Stripe's basic rate limiter counts read (GET) and write (POST, DELETE)
operations per second separately (live mode 100 and 100, test mode 25 and 25). Here each
kind has its own limit, counted over a sliding one-second window of real (monotonic) time,
not the emulator's clock, across every API key and `Stripe-Account`. Only admitted
requests count: a refused one takes no place in the window. Everything is off by default.
"""
import threading
import time
from collections import deque

from .errors import StripeError

WINDOW_SECONDS = 1.0
MAX_LATENCY_SECONDS = 30.0
# The kind of operation each method is, as Stripe's rate limiter counts them.
KINDS = {"GET": "read", "HEAD": "read", "POST": "write", "DELETE": "write"}
SETTINGS = ("latency_seconds", "read_per_second", "write_per_second", "should_retry")
RATE_LIMIT_MESSAGE = ("Request rate limit exceeded. Learn more about rate limits here "
                      "https://stripe.com/docs/rate-limits.")


class LimitsError(ValueError):
    """A setting that makes no sense (the message says why)."""


def rate_limit_error(should_retry=False):
    """Stripe's 429 `rate_limit` error, never stored under an idempotency key; with
    `Stripe-Should-Retry: true` when `should_retry` (the stripe package then retries)."""
    headers = {"Stripe-Should-Retry": "true"} if should_retry else None
    return StripeError(RATE_LIMIT_MESSAGE, code="rate_limit", status=429, saved=False,
                       headers=headers)


def _latency(value):
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        raise LimitsError("latency_seconds must be a number of seconds")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise LimitsError("latency_seconds must be a number of seconds") from None
    if not 0.0 <= seconds <= MAX_LATENCY_SECONDS:
        raise LimitsError("latency_seconds must be between 0 and %g" % MAX_LATENCY_SECONDS)
    return seconds


def _rate(name, value):
    """Requests per second, or None (off) for None, "" and 0."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise LimitsError("%s must be a whole number of requests (0 or null: off)" % name)
    try:
        rate = int(value)
    except ValueError:
        raise LimitsError("%s must be a whole number of requests (0 or null: off)"
                          % name) from None
    if rate < 0:
        raise LimitsError("%s must not be negative" % name)
    return rate or None


def _flag(value):
    if isinstance(value, bool):
        return value
    if value in ("true", "1", 1):
        return True
    if value in ("false", "0", 0):
        return False
    raise LimitsError("should_retry must be true or false")


class Limits:
    """The latency and rate limits in force, and the sliding windows they are counted in."""

    def __init__(self, latency_seconds=0.0, read_per_second=None, write_per_second=None,
                 should_retry=False, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._windows = {"read": deque(), "write": deque()}
        self.latency_seconds = 0.0
        self._rates = {"read": None, "write": None}
        self.should_retry = False
        self._defaults = self.update(latency_seconds=latency_seconds,
                                     read_per_second=read_per_second,
                                     write_per_second=write_per_second,
                                     should_retry=should_retry)

    def reset(self):
        """Back to the settings the emulator was started with; the windows emptied."""
        self.update(**self._defaults)
        with self._lock:
            for window in self._windows.values():
                window.clear()

    def settings(self):
        """The settings in force (a rate of None is off)."""
        return {"latency_seconds": self.latency_seconds,
                "read_per_second": self._rates["read"],
                "write_per_second": self._rates["write"],
                "should_retry": self.should_retry}

    def update(self, **changes):
        """Change any of SETTINGS (all checked before any is applied); the settings now."""
        unknown = sorted(set(changes) - set(SETTINGS))
        if unknown:
            raise LimitsError("Unknown setting: %s (known: %s)" % (", ".join(unknown),
                                                                   ", ".join(SETTINGS)))
        new = self.settings()
        if "latency_seconds" in changes:
            new["latency_seconds"] = _latency(changes["latency_seconds"])
        for name in ("read_per_second", "write_per_second"):
            if name in changes:
                new[name] = _rate(name, changes[name])
        if "should_retry" in changes:
            new["should_retry"] = _flag(changes["should_retry"])
        with self._lock:
            self.latency_seconds = new["latency_seconds"]
            self._rates = {"read": new["read_per_second"], "write": new["write_per_second"]}
            self.should_retry = new["should_retry"]
        return new

    def admit(self, method):
        """True when a request of `method` may be served now (it then takes its place in
        its window); False when its kind has had its limit's worth in the last second."""
        kind = KINDS.get(method.upper(), "write")
        with self._lock:
            limit = self._rates[kind]
            if limit is None:
                return True
            now = self._clock()
            window = self._windows[kind]
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True

    def refusal(self):
        """The error a refused request is answered with."""
        return rate_limit_error(self.should_retry)
