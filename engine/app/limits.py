"""Threads of their own for the requests that run a filter, so that slow filters cannot stall other requests.

FastAPI runs each plain (``def``) route on anyio's default thread pool, 40 threads for the whole server. A SQL
filter may run until its deadline (:data:`gingham.storage.docstore.filters.TIME_LIMIT_S`, 30 s; an object of fields
reads every document's metadata), so forty slow filters in flight would hold every thread, and a plain search would
wait for one. The routes that run a filter (``/search`` and ``/documents/delete`` with a ``filter``) therefore run
on :class:`FilterSlots` instead: ``slots`` threads of their own. A filtered request that finds every slot taken
waits up to ``wait_s`` for one, then is answered 503 with ``Retry-After``: the server sheds that load at once rather
than queueing connections behind filters that may each take 30 s, and the client retries later (cheap filters take
milliseconds, so a burst of them waits, not fails). Requests without a filter keep the whole default pool.
"""

from __future__ import annotations

import math
from typing import Any, Callable

#: Filter slots, and the seconds a filtered request waits for one before a 503, unless the server is told otherwise.
DEFAULT_FILTER_SLOTS = 8
DEFAULT_FILTER_WAIT_S = 2.0
#: Seconds a client is told to wait (``Retry-After``) when every filter slot is taken.
RETRY_AFTER_S = 1


class Saturated(Exception):
    """Every filter slot stayed taken for ``wait_s``: the request is refused (the server answers 503)."""


class FilterSlots:
    """At most ``slots`` filtered requests at a time, each on a thread of this limiter's own; one that waits more
    than ``wait_s`` seconds for a slot raises :class:`Saturated`. ``stats`` counts what it ran and refused."""

    def __init__(self, slots: int, wait_s: float) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"filter_slots must be a positive int, got {slots!r}")
        if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or not math.isfinite(wait_s) \
                or wait_s < 0:
            raise ValueError(f"filter_wait_s must be a finite number of seconds >= 0, got {wait_s!r}")
        self.slots, self.wait_s = slots, float(wait_s)
        self.stats = {"slots": slots, "running": 0, "ran": 0, "refused": 0}
        self._admit = self._threads = None  # an anyio Semaphore and CapacityLimiter, made in the event loop

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the slots' threads, once a slot is free."""
        import anyio  # the server's extra brings it (this module's constants are read without it)
        import anyio.to_thread

        if self._admit is None:
            self._admit, self._threads = anyio.Semaphore(self.slots), anyio.CapacityLimiter(self.slots)
        admitted = False
        with anyio.move_on_after(self.wait_s):
            await self._admit.acquire()
            admitted = True
        if not admitted:
            self.stats["refused"] += 1
            raise Saturated(f"all {self.slots} filter slots are busy (filters run up to their deadline); retry in "
                            f"{RETRY_AFTER_S} s, or search without a filter")
        self.stats["running"] += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._threads)
        finally:
            self.stats["running"] -= 1
            self.stats["ran"] += 1
            self._admit.release()
