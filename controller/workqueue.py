"""A delaying work queue with client-go's guarantees, for asyncio.

- a key is handed to at most one worker at a time;
- a key added while it is being processed is processed again afterwards (nothing is lost);
- a key added several times waits for the earliest of the requested times (no duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due: dict[K, float] = {}  # waiting keys -> when they become due
        self._heap: list[tuple[float, int, K]] = []  # may hold stale entries; _due is the truth
        self._counter = itertools.count()
        self._processing: set[K] = set()
        self._again: dict[K, float] = {}  # added while processing -> when, once done
        self._changed = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._due) + len(self._processing)

    def scheduled(self, key: K) -> float | None:
        """Seconds until the key is due, if it waits."""
        due = self._due.get(key, self._again.get(key))
        return None if due is None else max(0.0, due - self._clock())

    def add(self, key: K, delay: float = 0.0) -> None:
        when = self._clock() + max(0.0, delay)
        if key in self._processing:
            self._again[key] = min(when, self._again.get(key, when))
            return
        if key in self._due and self._due[key] <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._counter), key))
        self._notify()

    def forget(self, key: K) -> None:
        """Drop a waiting key (its object was deleted); a key being processed finishes normally."""
        self._due.pop(key, None)
        self._again.pop(key, None)

    async def get(self) -> K:
        """Wait for the next due key and mark it as being processed. Raises QueueClosed when closed."""
        while True:
            # No await between clearing and checking: an add() in between cannot be missed.
            self._changed.clear()
            if self._closed:
                raise QueueClosed()
            self._drop_stale()
            wait: float | None = None
            if self._heap:
                when, _, key = self._heap[0]
                wait = when - self._clock()
                if wait <= 0:
                    heapq.heappop(self._heap)
                    del self._due[key]
                    self._processing.add(key)
                    return key
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._again:
            when = self._again.pop(key)
            self._due[key] = when
            heapq.heappush(self._heap, (when, next(self._counter), key))
            self._notify()

    def close(self) -> None:
        self._closed = True
        self._notify()

    def _drop_stale(self) -> None:
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) == when:
                return
            heapq.heappop(self._heap)

    def _notify(self) -> None:
        self._changed.set()


class QueueClosed(Exception):
    pass
