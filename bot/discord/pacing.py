"""How often a channel's growing answers are edited, shared by every answer in that channel.

Discord limits writes per channel (about five per five seconds). One answer edits itself at
most every `edit_interval_s`; under a burst of answers in one channel the intermediate edits
of all of them share one pace: at most one in flight per channel, and none sooner than
`interval_s` after the last. Final writes never wait here (they must arrive): discord.py
paces them by Discord's rate-limit headers and retries a 429 after its `retry_after`.
"""

from __future__ import annotations

import time
from typing import Callable


class EditPacer:
    """Per-channel gate for intermediate edits; used on the event loop only."""

    def __init__(self, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._busy: set[str] = set()
        self._last: dict[str, float] = {}

    def claim(self, channel: str) -> bool:
        """True when an intermediate edit may go to `channel` now (then call release)."""
        last = self._last.get(channel)
        if channel in self._busy or (last is not None and self.clock() - last < self.interval_s):
            return False
        self._busy.add(channel)
        return True

    def release(self, channel: str) -> None:
        self._busy.discard(channel)
        self._last[channel] = self.clock()
