"""A queue worked off in order by one task of its own: the mechanics of the lead's CRM writes
and read-model batches, kept out of the workflow (as samples-python's ``updatable_timer_lib``
keeps a timer's).

No decision and no Temporal call here: the workflow gives each pump the work for the items at
the front of its queue (an activity per CRM write, a local activity per batch of facts). The
pump runs as an asyncio task in the workflow's own event loop, so its commands interleave with
the lead's as they always did; a lead never waits on it. The module holds no state: it is
passed through the sandbox and imported once per worker process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from nurture.core.commands import Queue

Item = TypeVar("Item")


def _nothing_else() -> bool:
    return False


class Pump(Queue[Item]):
    """``items`` worked off in order, by at most one task at a time, started when there is
    work and ending when there is none.

    ``work(items)`` does the work for the front of the queue and answers how many items it
    did; they leave the queue only then, so an item in hand is still queued when the lead
    continues as new and is done again in the next run (the work must be idempotent).
    ``more()`` says whether there is work beyond the queue (the lead's row changed);
    ``after()`` is called once items left the queue (the workflow counts them).
    ``put`` (from :class:`~nurture.core.commands.Queue`) queues items and starts the pump."""

    def __init__(
        self,
        items: Iterable[Item],
        work: Callable[[list[Item]], Awaitable[int]],
        more: Callable[[], bool] = _nothing_else,
        after: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(list(items))
        self._work = work
        self._more = more
        self._after = after
        self._task: asyncio.Task[None] | None = None

    def has_work(self) -> bool:
        return bool(self.items) or self._more()

    @property
    def busy(self) -> bool:
        """A task is working the queue off (it ends once there is nothing left to do)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Work the queue off, unless there is nothing to do or the pump already runs."""
        if self.has_work() and not self.busy:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.has_work():
            done = await self._work(self.items)
            del self.items[:done]
            self.taken += done
            self._after()
