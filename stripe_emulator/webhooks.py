"""Signed webhook delivery from a background thread, with retries and test modes."""
import hashlib
import hmac
import http.client
import json
import random
import threading
import time
from urllib.parse import urlsplit

MODES = ("normal", "duplicate", "shuffle", "paused")


def sign(payload, secret, timestamp):
    """The Stripe-Signature header for `payload` (str) signed at unix time `timestamp`."""
    mac = hmac.new(secret.encode(), ("%d.%s" % (timestamp, payload)).encode(),
                   hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (timestamp, mac)


def post(url, body, headers, timeout):
    """POST bytes; returns the status code (raises OSError on connection failure)."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class Dispatcher:
    """Queues one delivery per (event, endpoint) and sends them in the current mode."""

    def __init__(self, emulator, url=None, secret=None, attempts=5, backoff=0.05,
                 timeout=5.0, background=True):
        self.emu = emulator
        self.url = url
        self.secret = secret or "whsec_emulator"
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.mode = "normal"
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._queue = []
        self._in_flight = 0
        self.delivered = 0
        self.failed = []
        self._thread = None
        self._stopping = False
        if background:
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def clear(self):
        """Drop pending deliveries and counters; back to normal mode."""
        with self._cond:
            self._queue.clear()
            self.failed.clear()
            self.delivered = 0
            self.mode = "normal"

    def set_mode(self, mode):
        """Switch delivery mode."""
        with self._cond:
            self.mode = mode
            self._cond.notify_all()

    def stop(self):
        """Stop the background thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def _targets(self, event):
        targets = []
        if self.url:
            targets.append((self.url, self.secret))
        connected = "account" in event
        for ep in self.emu.store.all("webhook_endpoint", self.emu.platform_id):
            if ep["status"] != "enabled" or bool(ep.get("_connect")) != connected:
                continue
            if "*" in ep["enabled_events"] or event["type"] in ep["enabled_events"]:
                targets.append((ep["url"], ep["_secret"]))
        return targets

    def enqueue(self, event):
        """Queue deliveries of `event` to every matching endpoint."""
        targets = self._targets(event)
        event["pending_webhooks"] = len(targets)
        if not targets:
            return
        with self._cond:
            now = time.time()
            for url, secret in targets:
                self._queue.append({"event": event, "url": url, "secret": secret,
                                    "attempts": 0, "due": now})
            self._cond.notify_all()

    def status(self):
        """Counts for the control endpoint."""
        with self._cond:
            return {"mode": self.mode, "pending": len(self._queue),
                    "in_flight": self._in_flight, "delivered": self.delivered,
                    "failed": len(self.failed), "url": self.url}

    def _take(self, everything, mode=None):
        """Remove and return the deliveries to send now, ordered by the mode."""
        now = time.time()
        if everything:
            batch, self._queue = self._queue, []
        else:
            batch = [d for d in self._queue if d["due"] <= now]
            self._queue = [d for d in self._queue if d["due"] > now]
        if (mode or self.mode) == "shuffle":
            random.shuffle(batch)
        self._in_flight += len(batch)
        return batch

    def _send(self, delivery):
        event = delivery["event"]
        with self._cond:
            payload = json.dumps(event, indent=2)
        ts = int(time.time())  # real wall-clock time: receivers check it against theirs
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                   "Stripe-Signature": sign(payload, delivery["secret"], ts)}
        try:
            ok = 200 <= post(delivery["url"], payload.encode(), headers, self.timeout) < 300
        except (OSError, http.client.HTTPException):
            ok = False
        return ok

    def _deliver(self, batch, mode=None):
        sent = 0
        for delivery in batch:
            copies = 2 if (mode or self.mode) == "duplicate" else 1
            ok = False
            for _ in range(copies):
                ok = self._send(delivery) or ok
            with self._cond:
                self._in_flight -= 1
                if ok:
                    sent += 1
                    self.delivered += 1
                    delivery["event"]["pending_webhooks"] -= 1
                else:
                    delivery["attempts"] += 1
                    if delivery["attempts"] >= self.attempts:
                        self.failed.append(delivery)
                    else:
                        delay = self.backoff * (2 ** (delivery["attempts"] - 1))
                        delivery["due"] = time.time() + delay
                        self._queue.append(delivery)
                self._cond.notify_all()
        return sent

    def flush(self, mode=None):
        """Deliver everything pending now, synchronously, in the current mode (or `mode`
        for this flush only); returns the number of successful deliveries."""
        with self._send_lock:
            with self._cond:
                batch = self._take(everything=True, mode=mode)
            return self._deliver(batch, mode=mode)

    def wait_idle(self, timeout=10.0):
        """Block until nothing is queued or in flight (paused deliveries count as queued)."""
        deadline = time.time() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def _run(self):
        while True:
            with self._cond:
                while not self._stopping and (self.mode == "paused" or not self._queue):
                    self._cond.wait(0.5)
                if self._stopping:
                    return
                due = min(d["due"] for d in self._queue)
                if self.mode == "shuffle":
                    # gather a few events so their order can actually be mixed
                    due += 0.05
                wait = due - time.time()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            with self._send_lock:
                with self._cond:
                    if self.mode == "paused":
                        continue
                    batch = self._take(everything=False)
                self._deliver(batch)
