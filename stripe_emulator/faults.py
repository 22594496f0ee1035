"""Injected failures: the next `count` requests under a path prefix fail in a chosen way."""
import threading

MODES = ("error", "timeout", "rate_limit", "delay")


class Faults:
    """A list of armed faults, consumed first-match in the order they were added."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    def clear(self):
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def add(self, path_prefix, mode, count=1, status=None, seconds=None, method=None):
        """Arm a fault."""
        fault = {"path_prefix": path_prefix, "mode": mode, "count": int(count),
                 "status": status, "seconds": seconds, "method": method}
        with self._lock:
            self._faults.append(fault)
        return dict(fault)

    def take(self, method, path):
        """The fault this request trips, if any (its count is consumed)."""
        with self._lock:
            for fault in self._faults:
                if fault["count"] <= 0 or not path.startswith(fault["path_prefix"]):
                    continue
                if fault["method"] and fault["method"].upper() != method:
                    continue
                fault["count"] -= 1
                hit = dict(fault)
                self._faults = [f for f in self._faults if f["count"] > 0]
                return hit
        return None

    def list(self):
        """The armed faults."""
        with self._lock:
            return [dict(f) for f in self._faults]
