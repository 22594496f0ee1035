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


def test_a_wake_relays_before_the_interval_and_shutdown_stops_the_loop(redis_app):
    redis_app.config["OUTBOX_RELAY_INTERVAL"] = 3600  # only a wake can make it tick in time
    ticker = Ticker(redis_app, [])
    ticked = threading.Event()
    ticker.tick = lambda now: ticked.set() or []
    loop = threading.Thread(target=ticker.run, daemon=True)
    loop.start()
    assert not ticked.wait(0.3)
    ticker.wake.set()
    assert ticked.wait(5)
    ticker.shutdown()
    loop.join(5)
    assert not loop.is_alive()
