"""A small sampling profiler for the benchmarks: where the process's busy Python threads are.

Every ``interval`` seconds a thread takes every other thread's stack (``sys._current_frames``)
and counts, per function, the samples whose stack holds it (inclusive) and those it is on top
of (self). Threads parked in an executor's queue or a selector are idle and not counted.
Threads inside C code that released the GIL (SQLite, sockets) are counted: the figures are
shares of *wall time of busy threads*, waits on locks inside C included, not of CPU.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from types import FrameType, TracebackType

IDLE_TOPS = frozenset(
    {
        "concurrent/futures/thread.py:_worker",
        "threading.py:wait",
        "queue.py:get",
        "selectors.py:select",
        "socketserver.py:serve_forever",
        "asyncio/base_events.py:_run_once",
    }
)
PREFIXES = ("site-packages/", "/work/main/", "lib/python3.11/")


def frame_key(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    for cut in PREFIXES:
        if cut in path:
            path = path.split(cut, 1)[1]
            break
    return f"{path}:{frame.f_code.co_name}"


class StackSampler:
    """``with StackSampler() as sampler: ...``, then ``sampler.top()``."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.samples = 0
        self.inclusive: Counter[str] = Counter()
        self.self_: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack: list[str] = []
                current: FrameType | None = frame
                while current is not None:
                    stack.append(frame_key(current))
                    current = current.f_back
                if stack[0] in IDLE_TOPS or stack[0].endswith(":select"):
                    continue
                self.samples += 1
                self.self_[stack[0]] += 1
                self.inclusive.update(set(stack))


def top(
    samplers: list[StackSampler], count: int = 25, only: tuple[str, ...] = ()
) -> list[tuple[str, float]]:
    """Over all ``samplers``: the functions with the most inclusive samples (those whose key
    contains one of ``only``, if given), as (function, share of all samples in %)."""
    samples = sum(s.samples for s in samplers)
    inclusive: Counter[str] = Counter()
    for sampler in samplers:
        inclusive.update(sampler.inclusive)
    if not samples:
        return []
    rows = [
        (name, round(hits / samples * 100, 1))
        for name, hits in inclusive.most_common()
        if not only or any(part in name for part in only)
    ]
    return rows[:count]
