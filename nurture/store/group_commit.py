"""Group commit: many threads' writes in one transaction, each thread back only once its own
write is committed.

A worker writes one read-model batch per lead per workflow task, each from its own local
activity on the activity thread pool, dozens at once under load; one transaction each pays the
statements' fixed cost (SQLAlchemy's execution, the driver's round trip, the commit) per lead.
Here the first thread to arrive while nothing is being written becomes the leader: it writes
every batch waiting (up to ``most`` at a time) in one transaction, tells their threads how it
went and hands the lead to the next thread still waiting, if any. A thread returns only after
the transaction holding its batch committed, or raises what that transaction raised: a local
activity still completes only once its facts are in, so the read model's guarantee (never lost,
never twice: writes are idempotent and a failed one is retried) does not change.

A writer may be stopped anywhere, waiting included: Temporal cancels a local activity past its
timeout by raising in its thread, which a thread blocked here meets as it wakes, possibly just
handed the lead. It then leaves the queue and hands the lead on; otherwise every later writer
of the worker would wait for a leader that is gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")


@dataclass
class _Waiting(Generic[Item]):
    item: Item
    woken: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    error: Exception | None = None
    leads: bool = False
    """Handed the lead (under the guard): it writes the next group, or hands the lead on."""


class GroupCommit(Generic[Item]):
    """``write(item)`` from any thread; ``write_all(items)`` is called by one thread at a time
    and writes the items in one transaction; ``isolate`` decides, for an error of a group of
    several, to write each item of it alone so one bad item fails only its own writer."""

    def __init__(
        self,
        write_all: Callable[[Sequence[Item]], None],
        isolate: Callable[[Exception], bool] = lambda _: False,
        most: int = 64,
    ) -> None:
        self._write_all = write_all
        self._isolate = isolate
        self._most = most
        self._guard = threading.Lock()
        self._queue: list[_Waiting[Item]] = []
        self._leading = False

    def write(self, item: Item) -> None:
        mine = _Waiting(item)
        with self._guard:
            self._queue.append(mine)
            mine.leads = not self._leading
            self._leading = True
        try:
            if not mine.leads:
                mine.woken.wait()  # finished by a leader, or made the leader
            if not mine.finished:
                self._lead()
        except BaseException:  # stopped (a cancelled activity): the others must go on
            self._leave(mine)
            raise
        if mine.error is not None:
            raise mine.error

    def _lead(self) -> None:
        group: list[_Waiting[Item]] = []
        try:
            with self._guard:
                group, self._queue = self._queue[: self._most], self._queue[self._most :]
            self._commit(group)
        except BaseException as exc:  # interrupted: no writer may wait for ever or think it done
            for waiting in group:
                waiting.error = waiting.error or RuntimeError(f"the write was interrupted: {exc!r}")
            raise
        finally:
            with self._guard:
                following = self._next_leader()
            for waiting in group:
                waiting.finished = True
                waiting.woken.set()
            if following is not None:
                following.woken.set()  # not finished: it leads the next group

    def _leave(self, mine: _Waiting[Item]) -> None:
        """``mine``'s writer stopped before its write was done: out of the queue (a group
        already holding it still writes it, idempotently), and a lead it was handed goes on."""
        with self._guard:
            if mine.finished:  # its group was written, or it led and handed on
                return
            if mine in self._queue:
                self._queue.remove(mine)
            if not mine.leads:
                return
            mine.leads = False
            following = self._next_leader()
        if following is not None:
            following.woken.set()

    def _next_leader(self) -> _Waiting[Item] | None:
        """The writer first in the queue, handed the lead; None when no one waits (under the
        guard)."""
        following = self._queue[0] if self._queue else None
        if following is not None:
            following.leads = True
        self._leading = following is not None
        return following

    def _commit(self, group: list[_Waiting[Item]]) -> None:
        try:
            self._write_all([w.item for w in group])
        except Exception as exc:
            if len(group) == 1 or not self._isolate(exc):
                for waiting in group:
                    waiting.error = exc
                return
            for waiting in group:  # one item is refused: each alone, the others go in
                try:
                    self._write_all([waiting.item])
                except Exception as alone:
                    waiting.error = alone
