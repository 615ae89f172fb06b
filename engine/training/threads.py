"""How many torch threads a CPU job uses: the cores that other processes leave free."""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator


def busy_threads(cores: int | None = None, load: float | None = None) -> int:
    """torch threads to use on a CPU that other processes may be using.

    torch's worker threads wait for each other at every operation; when another process holds
    one of the cores, all of them wait for the slowest. Measured on the 2-core machine at load
    average 7-9: one forward+backward step took 6.8-14 s with 1 thread and 36-60 s with 2. So
    only the cores the load average leaves free are used (at least 1)."""
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # not available on this platform
            load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


@contextlib.contextmanager
def cpu_threads(device: Any) -> Iterator[None]:
    """Run the block with busy_threads() torch threads on the CPU; restore the count after."""
    import torch

    if getattr(device, "type", str(device)) != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, _threads_for_this_process()))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=1)
def _threads_for_this_process() -> int:
    """busy_threads(), decided once: every run in a process (a job runs in its own) then
    uses the same thread count, so a resumed run adds up its numbers exactly as an
    uninterrupted one does."""
    return busy_threads()
