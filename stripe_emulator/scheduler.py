"""Work Stripe does by itself a moment after a request: a captured charge's balance
transaction, transfer and application fee appearing (asynchronous capture), a refund
failing later. Tasks run in a background thread at their due (wall-clock) time, under the
emulator's lock, or all at once when a control or a request needs them done now.
"""
import threading
import time


class Scheduler:
    """Keyed one-shot tasks: `add(key, delay, fn)`, `run(key)` now, `flush()` everything."""

    def __init__(self, lock, background=True, after=None):
        self._lock = lock  # the emulator's lock: every task changes its state
        self._after = after  # called (under the lock) after each task
        self._cond = threading.Condition()
        self._tasks = {}  # key -> (due, fn)
        self._running = 0
        self._stopping = False
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="stripe-scheduler",
                                            daemon=True)
            self._thread.start()

    def add(self, key, delay, fn):
        """Run `fn()` in `delay` seconds (0: as soon as the thread wakes) unless run before."""
        with self._cond:
            self._tasks[key] = (time.monotonic() + max(0.0, delay), fn)
            self._cond.notify_all()

    def pending(self, prefix=None):
        """Keys still waiting (those whose first item is `prefix`, when given)."""
        with self._cond:
            return [k for k in self._tasks if prefix is None or k[0] == prefix]

    def run(self, key):
        """Run one task now if it is still waiting (the caller holds the emulator's lock)."""
        with self._cond:
            task = self._tasks.pop(key, None)
            if task is not None:
                self._running += 1
        if task is None:
            return False
        try:
            task[1]()
            if self._after is not None:
                self._after()
        finally:
            self._done()
        return True

    def flush(self, prefix=None):
        """Run every waiting task (of one kind) now, and those they start (a settlement's
        dispute), until none waits; returns how many ran."""
        ran = 0
        with self._lock:
            for _ in range(100):
                keys = self.pending(prefix)
                if not keys:
                    break
                for key in keys:
                    ran += self.run(key)
        return ran

    def clear(self):
        """Forget every waiting task."""
        with self._cond:
            self._tasks.clear()

    def wait_idle(self, timeout=10.0):
        """Block until no task waits or runs; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._tasks or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self):
        """Stop the background thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def _done(self):
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def _loop(self):
        while True:
            with self._cond:
                while not self._stopping and not self._tasks:
                    self._cond.wait(0.5)
                if self._stopping:
                    return
                key, (due, _) = min(self._tasks.items(), key=lambda kv: kv[1][0])
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            with self._lock:
                self.run(key)
