"""When config files changed on disk: the mtimes looked at, at most every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class ChangeWatch:
    """Says whether ``stamp()`` (e.g. the files' modification times) changed since the last
    look; looks at most every ``every`` seconds, so a reader asking per request costs a
    clock read. Not thread-safe: call under the owner's lock."""

    def __init__(self, stamp: Callable[[], Hashable], every: float) -> None:
        self.stamp, self.every = stamp, every
        self._looked_at = time.monotonic()
        self._last = stamp()

    def changed(self) -> bool:
        if time.monotonic() - self._looked_at < self.every:
            return False
        self._looked_at = time.monotonic()
        now = self.stamp()
        if now == self._last:
            return False
        self._last = now
        return True
