"""Full garbage collections while a benchmark phase runs: how many, how long each stopped the
process, and what the collector tracks at the end (``gc.callbacks``; the benchmark's worker runs
in its own process, so its pauses are the process's).

A full collection walks every object the collector tracks, a worker's cached leads included,
and every lead on that worker waits for it: the known cause of hand-off tail latency
(``bench/README.md``, "Engine throughput").
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class FullCollections:
    """Record the oldest generation's collections between ``__enter__`` and ``__exit__``."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._began: float | None = None

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            self.pauses_ms.append((time.perf_counter() - self._began) * 1000)
            self._began = None

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._observe)

    def summary(self) -> dict[str, float | int]:
        return {
            "full_collections": len(self.pauses_ms),
            "max_pause_ms": round(max(self.pauses_ms, default=0.0), 1),
            "total_pause_ms": round(sum(self.pauses_ms), 1),
            "tracked_objects": len(gc.get_objects()),
            "frozen_objects": gc.get_freeze_count(),
            "rss_mib": resident_mib(),
        }


def resident_mib() -> float:
    """The process's resident memory now (``VmRSS``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
