"""The rate limiter's in-memory storage (`memory://`), swept as it counts.

limits' `MemoryStorage` purges expired counters on a timer thread, and starts a new
10 ms timer after any count that finds the last one finished: under a steady flow of
submissions, a new thread every few requests, measured at a tenth of a submission's
cost in a gunicorn worker. This subclass keeps limits' counters, windows and purge, and
runs the purge inline instead, at most once per `SWEEP_SECONDS`, with no thread at all.
Between sweeps an expired counter takes no memory it did not already take, and is never
counted: limits' `get` treats a counter past its expiry as gone.

It is registered under limits' own `memory` scheme, so `RATELIMIT_STORAGE_URI =
"memory://"` (the default) means this storage once this module is imported.
"""

from __future__ import annotations

import time
from contextlib import suppress

from limits.storage import MemoryStorage


class SweptMemoryStorage(MemoryStorage):
    STORAGE_SCHEME = ["memory"]
    #: Longest time between two purges of expired counters (seconds).
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str):
        self._next_sweep = 0.0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()  # the one limits starts when created: it would purge once, then stop

    # limits calls its private `__schedule_expiry` after each count; name-mangled, this
    # is the attribute it looks up (limits is pinned; a test checks no thread starts).
    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.SWEEP_SECONDS
        # limits' purge reads a counter that a concurrent `get` (another thread of the
        # worker) may have just dropped: the next sweep finishes the work.
        with suppress(KeyError):
            self._MemoryStorage__expire_events()
