"""Injected failures: requests under a path prefix fail in a chosen way, `count` times.

A fault trips on every matching request (`probability` 1, the default) or on a random
share of them (`probability` below 1, drawn from its own generator, seeded by `seed` for a
reproducible sequence); only a request it trips consumes its count. Faults are looked at
in the order they were added: the first one that trips is the one the request meets.
"""
import random
import threading

# error, timeout, rate_limit: the request fails before any state changes. delay: it is
# served late. lost: it is carried out (and its answer kept for its idempotency key), then
# the answer never reaches the client: it gets an error instead (after `seconds`, if given).
MODES = ("error", "timeout", "rate_limit", "delay", "lost")
# Carried out before the fault shows: the others fail (or wait) first.
AFTER = ("lost",)


class FaultError(ValueError):
    """A fault that cannot be armed (the message says why)."""


class Faults:
    """A list of armed faults, consumed first-trip in the order they were added."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    def clear(self):
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def add(self, path_prefix, mode, count=1, status=None, seconds=None, method=None,
            probability=None, seed=None):
        """Arm a fault; returns it as listed."""
        if mode not in MODES:
            raise FaultError("mode must be one of %s" % ", ".join(MODES))
        probability = 1.0 if probability is None else float(probability)
        if not 0.0 <= probability <= 1.0:
            raise FaultError("probability must be between 0 and 1")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, str))):
            raise FaultError("seed must be an integer or a string")
        fault = {"path_prefix": path_prefix, "mode": mode, "count": int(count),
                 "status": status, "seconds": seconds, "method": method,
                 "probability": probability, "seed": seed,
                 "matched": 0, "tripped": 0}
        rng = random.Random(seed)
        with self._lock:
            self._faults.append((fault, rng))
        return dict(fault)

    def take(self, method, path):
        """The fault this request trips, if any (its count is consumed)."""
        with self._lock:
            for fault, rng in self._faults:
                if fault["count"] <= 0 or not path.startswith(fault["path_prefix"]):
                    continue
                if fault["method"] and fault["method"].upper() != method:
                    continue
                fault["matched"] += 1
                if fault["probability"] < 1.0 and rng.random() >= fault["probability"]:
                    continue  # not this time: a later fault may still trip
                fault["count"] -= 1
                fault["tripped"] += 1
                hit = dict(fault)
                self._faults = [(f, r) for f, r in self._faults if f["count"] > 0]
                return hit
        return None

    def list(self):
        """The armed faults (with how many requests each matched and tripped so far)."""
        with self._lock:
            return [dict(f) for f, _ in self._faults]
