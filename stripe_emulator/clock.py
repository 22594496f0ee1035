"""The emulator's clock: real time plus an offset that tests can advance."""
import threading
import time
from contextlib import contextmanager


class Clock:
    """Unix seconds that move with real time and jump forward on request; `held()` stops
    real time from moving it meanwhile (a billing step is carried out at its exact time)."""

    def __init__(self):
        self._offset = 0
        self._held = None
        self._lock = threading.Lock()

    def now(self):
        """Current emulator time in whole unix seconds."""
        held = self._held
        return held if held is not None else int(time.time()) + self._offset

    def advance(self, seconds):
        """Move the clock forward; returns the new time."""
        with self._lock:
            self._offset += int(seconds)
            if self._held is not None:
                self._held += int(seconds)
        return self.now()

    @contextmanager
    def held(self):
        """Only `advance` moves the clock inside; real time counts again after (the clock
        then shows what passed meanwhile)."""
        with self._lock:
            self._held = int(time.time()) + self._offset
        try:
            yield
        finally:
            with self._lock:
                self._held = None

    def reset(self):
        """Back to real time."""
        with self._lock:
            self._offset = 0
            self._held = None
