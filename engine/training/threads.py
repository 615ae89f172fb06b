"""How many torch threads a CPU job uses: the cores that other processes leave free.

torch's worker threads wait for each other at every operation; when another process holds
one of the cores, all of them wait for the slowest. Measured on the 2-core machine at load
average 7-9: one forward+backward step took 6.8-14 s with 1 thread and 36-60 s with 2. So a
job uses only the cores other processes leave free, and all of them on an idle machine.

"Other processes" is measured, not read off the load average: the load average of the last
minute includes this job's own work (and that of the benchmark or evaluation that ran just
before in the same process), which made an idle machine look busy and every job pick one
thread. `other_load()` samples the machine's busy time (/proc/stat) and subtracts this
process's own CPU time over the same short window.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

log = logging.getLogger("gptstore.training")
SAMPLE_S = 0.5  # how long other processes' work is sampled before a job picks its threads


def busy_threads(cores: int | None = None, load: float | None = None) -> int:
    """torch threads for a CPU with `load` cores' worth of other processes' work on it
    (measured by other_load() when None): the free cores, at least 1."""
    cores = cores or os.cpu_count() or 1
    if load is None:
        load = other_load().cores
    return max(1, min(cores, int(cores - load + 0.5)))


@dataclass(frozen=True)
class Load:
    """Other processes' CPU use over a short window, in cores, and how it was found."""

    cores: float
    how: str


def machine_busy_seconds() -> float | None:
    """CPU-seconds every core of the machine has spent busy since boot (/proc/stat), or None
    where there is no /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU-seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


def other_load(*, interval: float = SAMPLE_S,
               machine: Callable[[], float | None] = machine_busy_seconds,
               own: Callable[[], float] = own_cpu_seconds,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> Load:
    """Cores' worth of work other processes did over `interval` seconds (never this one's)."""
    before_machine, before_own, started = machine(), own(), clock()
    if before_machine is None:  # no /proc: the load average, less this process's share
        try:
            average = os.getloadavg()[0]
        except OSError:
            return Load(0.0, "no load figures on this platform")
        return Load(max(0.0, average - 1.0), f"load average {average:.1f}, less this job")
    sleep(interval)
    after_machine, after_own = machine(), own()
    elapsed = max(clock() - started, 1e-6)
    others = ((after_machine or before_machine) - before_machine - (after_own - before_own))
    cores = max(0.0, others / elapsed)
    return Load(cores, f"other processes used {cores:.1f} core(s) over the last "
                       f"{elapsed:.1f} s")


@contextlib.contextmanager
def cpu_threads(device: Any) -> Iterator[None]:
    """Run the block with this process's chosen torch thread count on the CPU; restore the
    count after."""
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
    """busy_threads(), decided once and logged with the reason: every run in a process (a
    job runs in its own) then uses the same thread count, so a resumed run adds up its
    numbers exactly as an uninterrupted one does."""
    cores = os.cpu_count() or 1
    load = other_load()
    threads = busy_threads(cores, load.cores)
    log.info("training on %d of %d cores: %s", threads, cores, load.how)
    return threads
