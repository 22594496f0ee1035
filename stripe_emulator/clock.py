"""The emulator's clock: real time plus an offset that tests can advance."""
import threading
import time


class Clock:
    """Unix seconds that move with real time and jump forward on request."""

    def __init__(self):
        self._offset = 0
        self._lock = threading.Lock()

    def now(self):
        """Current emulator time in whole unix seconds."""
        return int(time.time()) + self._offset

    def advance(self, seconds):
        """Move the clock forward; returns the new time."""
        with self._lock:
            self._offset += int(seconds)
        return self.now()

    def reset(self):
        """Back to real time."""
        with self._lock:
            self._offset = 0
