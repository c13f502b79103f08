"""The in-memory rate-limit storage: limits' counters, purged without a timer thread."""

import threading
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from barometer.extensions import limiter
from barometer.ratelimit import SweptMemoryStorage


def timers_started(storage_class, monkeypatch) -> int:
    """How many timer threads 100 counts from 100 addresses start."""
    started = []
    monkeypatch.setattr(threading.Timer, "start", lambda timer: started.append(timer))
    storage = storage_class()
    started.clear()  # the one each storage starts when created
    for i in range(100):
        storage.incr(f"198.51.100.{i}", expiry=60)
    monkeypatch.undo()
    return len(started)


def test_counting_starts_no_thread_where_limits_own_storage_starts_one_each_time(monkeypatch):
    assert timers_started(SweptMemoryStorage, monkeypatch) == 0
    # limits' storage starts one whenever its last timer has run (here, never started).
    assert timers_started(MemoryStorage, monkeypatch) == 100


def test_expired_counters_are_purged_by_the_next_sweep_and_live_ones_kept():
    storage = SweptMemoryStorage()
    storage.SWEEP_SECONDS = 0.2
    for i in range(50):  # the first count sweeps (nothing yet); the next sweep is due in 0.2 s
        storage.incr(f"old-{i}", expiry=0.01)
    storage.incr("recent", expiry=60)
    time.sleep(0.05)
    storage.incr("between", expiry=60)
    # Expired, not yet purged: no sweep is due, and no timer of limits' runs behind it.
    assert len(storage.storage) == 52 and storage.get("old-3") == 0
    time.sleep(0.2)
    storage.incr("new", expiry=60)
    assert set(storage.storage) == {"recent", "between", "new"}
    assert storage.get("recent") == 1


def test_a_purge_racing_another_thread_never_fails_a_count(monkeypatch):
    """limits' purge may read a counter another thread has just dropped: the count goes on."""
    storage = SweptMemoryStorage()

    def racing():
        raise KeyError("198.51.100.7")

    monkeypatch.setattr(storage, "_MemoryStorage__expire_events", racing)
    assert storage.incr("198.51.100.8", expiry=60) == 1


def test_limits_are_still_enforced_and_memory_is_the_default(app):
    assert isinstance(limiter.limiter.storage, SweptMemoryStorage)
    strategy = FixedWindowRateLimiter(SweptMemoryStorage())
    two_a_minute = parse("2 per minute")
    assert [strategy.hit(two_a_minute, "survey", "203.0.113.9") for _ in range(3)] == [True, True, False]
    assert strategy.hit(two_a_minute, "survey", "203.0.113.10")
