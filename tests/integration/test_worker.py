"""The worker's ticker: each cron slot is enqueued once, however many workers tick; a wake relays at once."""
import threading
from datetime import datetime, timezone

from marketplace import queue
from marketplace.worker import ScheduledJob, Ticker

SCHEDULE = [ScheduledJob("probe-hourly", "0 * * * *", "tests.jobs_probe.record")]


def test_each_slot_is_enqueued_once_across_workers(redis_app):
    start = datetime(2026, 11, 21, 9, 30, tzinfo=timezone.utc)
    first, second = Ticker(redis_app, SCHEDULE, start), Ticker(redis_app, SCHEDULE, start)
    at = datetime(2026, 11, 21, 12, 5, tzinfo=timezone.utc)
    enqueued = first.tick(at)
    assert enqueued == [f"cron-probe-hourly-{int(datetime(2026, 11, 21, h, tzinfo=timezone.utc).timestamp())}"
                        for h in (10, 11, 12)]
    assert second.tick(at) == []  # the other worker saw the same slots: nothing twice
    assert first.tick(datetime(2026, 11, 21, 12, 59, tzinfo=timezone.utc)) == []
    assert len(first.tick(datetime(2026, 11, 21, 13, 0, tzinfo=timezone.utc))) == 1
    assert queue.get_queue().count == 4


def test_a_wake_relays_before_the_interval_and_shutdown_stops_the_loop(redis_app, monkeypatch):
    from marketplace import outbox

    redis_app.config["OUTBOX_RELAY_INTERVAL"] = 3600  # only a wake can make it relay in time
    ticker = Ticker(redis_app, [])
    relayed, ticked = threading.Event(), threading.Event()
    monkeypatch.setattr(outbox, "relay", lambda: relayed.set() or 0)
    ticker.cron = lambda now: ticked.set() or []
    loop = threading.Thread(target=ticker.run, daemon=True)
    loop.start()
    assert not relayed.wait(0.3)
    ticker.wake.set()
    assert relayed.wait(5)
    assert not ticked.is_set()  # a wake relays; the cron slots wait for the interval
    ticker.shutdown()
    loop.join(5)
    assert not loop.is_alive()


def _children(pid: int) -> list[int]:
    from pathlib import Path

    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_killed_worker_leaves_no_process_holding_its_connections(redis_app, migrated, redis_url):
    """RQ forks its scheduler from the worker. A scheduler outliving a worker killed -9 kept
    copies of the worker's database sockets, so a transaction the worker had open stayed
    open in PostgreSQL with its row locks (a chaos run hung on one for minutes)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pytest

    if not Path("/proc/self/task").exists():
        pytest.skip("reads processes from /proc")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "APP_ENV": "testing", "DATABASE_URL": migrated, "REDIS_URL": redis_url,
           "FLASK_APP": "wsgi", "LOG_LEVEL": "WARNING"}
    children: list[int] = []
    worker = subprocess.Popen([sys.executable, "-m", "flask", "worker"], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (children := _children(worker.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert children, "the worker started no scheduler"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children), "a child of the killed worker lives on"
    finally:
        for pid in [worker.pid, *children]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_one_worker_listens_for_the_outbox_and_another_takes_over_when_it_ends(redis_app, pg_only, monkeypatch):
    """Every worker woken by every NOTIFY ran its own claim of the same rows: one listens, and
    when it is gone (PostgreSQL frees its advisory lock with its connection) another does."""
    from marketplace import worker

    monkeypatch.setattr(worker, "LEADER_RETRY_SECONDS", 0.1)
    first, second = Ticker(redis_app, []), Ticker(redis_app, [])
    listeners = [threading.Thread(target=t.listen, daemon=True) for t in (first, second)]
    listeners[0].start()
    assert first.leading.wait(10) and first.wake.wait(1)
    listeners[1].start()
    try:
        assert not second.leading.wait(1.0)  # the lock is held: the second only tries again
        assert not second.wake.is_set()
        first.shutdown()
        listeners[0].join(10)
        assert not listeners[0].is_alive() and not first.leading.is_set()
        assert second.leading.wait(10) and second.wake.wait(1)  # it took over, and relays at once
    finally:
        first.shutdown()
        second.shutdown()
        for listener in listeners:
            listener.join(10)
