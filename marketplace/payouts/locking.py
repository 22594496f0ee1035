"""One payout run at a time: a PostgreSQL advisory lock (an in-process lock per database on SQLite).

The lock is session-level on a connection of its own, held for the whole run, so it
survives the run's many commits and is released by PostgreSQL if the process dies.
A second run does not wait: it fails fast (409 for the API, a message in the CLI).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import text

from marketplace.extensions import db

LOCK_KEY = 0x70617930  # "pay0": the payout run lock's key
# On SQLite, one lock per database in this process (a run on another database, as the demo
# and the tests make beside each other, is no run of this one's).
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _local_lock() -> threading.Lock:
    url = db.engine.url.render_as_string(hide_password=True)
    with _local_locks_guard:
        return _local_locks.setdefault(url, threading.Lock())


@contextmanager
def run_lock() -> Iterator[bool]:
    """Yield True while holding the payout-run lock, False when another run holds it."""
    if db.engine.dialect.name != "postgresql":
        lock = _local_lock()
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
        return
    conn = db.engine.connect()
    try:
        acquired = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}))
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                conn.commit()
    finally:
        conn.close()


def is_busy() -> bool:
    """Whether a payout run holds the lock right now, or has shards still to end. Looks at the
    lock without taking it (taking it, even for a moment, would make a run starting then fail)."""
    from marketplace.payouts.runs import under_way

    if db.engine.dialect.name == "postgresql":
        held = bool(db.session.scalar(text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = 0 AND objid = :key AND objsubid = 1 AND database = ("
            "SELECT oid FROM pg_database WHERE datname = current_database()))"), {"key": LOCK_KEY}))
    else:
        held = _local_lock().locked()
    busy = held or under_way() is not None
    db.session.rollback()
    return busy
