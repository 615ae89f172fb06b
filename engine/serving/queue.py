"""The chat runner's waiting line, shared fairly between workspaces.

One bounded line (GPTSTORE_QUEUE_SIZE places) with a deque per tenant (the asking
workspace, Target.tenant):

- a tenant may hold at most an equal share of the places: the size divided by the number
  of tenants waiting plus one (at least one place), so a tenant alone holds at most half
  and one workspace can never make all the others busy; requests with no tenant ("": the
  command line, benchmarks) only count against the whole line;
- requests leave round-robin, one per tenant in turn, so a long line from one workspace does
  not delay the others' requests either.

Not thread-safe by itself: the runner holds its lock around every call.
"""

from __future__ import annotations

import collections
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
NO_TENANT = ""


class FairQueue(Generic[T]):
    def __init__(self, size: Callable[[], int]) -> None:
        self._size = size  # read on every put, so tests and settings can change it
        self._lines: collections.OrderedDict[str, collections.deque[T]] = collections.OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[T]:
        for line in self._lines.values():
            yield from line

    def share(self, tenant: str) -> int:
        """The most places `tenant` may hold right now."""
        others = sum(1 for t, line in self._lines.items() if line and t not in (tenant, NO_TENANT))
        return max(1, self._size() // (others + 2))

    def held(self, tenant: str) -> int:
        line = self._lines.get(tenant)
        return len(line) if line else 0

    def put(self, tenant: str, item: T) -> bool:
        """Queue `item`; False (nothing queued) when the line or the tenant's share is full."""
        if self._count >= self._size():
            return False
        if tenant != NO_TENANT and self.held(tenant) >= self.share(tenant):
            return False
        self._lines.setdefault(tenant, collections.deque()).append(item)
        self._count += 1
        return True

    def take(self, n: int) -> list[T]:
        """Up to `n` items, one per tenant in turn (the longest-waiting tenant first)."""
        taken: list[T] = []
        while len(taken) < n and self._count:
            tenant, line = next(iter(self._lines.items()))
            taken.append(line.popleft())
            self._count -= 1
            del self._lines[tenant]
            if line:
                self._lines[tenant] = line  # to the back of the round
        return taken

    def clear(self) -> list[T]:
        everything = list(self)
        self._lines.clear()
        self._count = 0
        return everything
