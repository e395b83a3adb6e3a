"""The lead's clock: the workflow's time, except right after a local activity resolves.

No decision here: the workflow reads the time through :meth:`HeldClock.now` and holds it
(:meth:`HeldClock.hold`) as each rules read resolves. The module holds no state of its own: it
is passed through the sandbox and imported once per worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from temporalio import workflow

Hold = tuple[asyncio.Task[Any] | None, datetime]


class HeldClock:
    def __init__(self) -> None:
        self._held: Hold | None = None

    def now(self) -> datetime:
        held = self._held
        if held is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing is held
                if asyncio.current_task() is held[0]:
                    return held[1]
        return workflow.now()

    def hold(self, at: datetime) -> None:
        """Read the time as ``at`` in this task until it next waits for anything.

        Called as a local activity resolves. The workflow clock there is not the same on
        replay: when the result reaches the workflow in a later workflow task than the one that
        recorded its marker (a busy worker, a query during the activity), the first run reads
        that later task's start time, a replay reads the marker's completion time; a touch due
        in between is sent on one and not the other, and the lead can never be replayed again
        (issue 13, replay after a slow local activity). ``at``, the time read before the
        activity was asked for, is the same on both; when the result arrives in the workflow
        task that asked for it (the usual case) it is only the activity's duration
        (milliseconds) earlier, and after retries (rules unreadable for a while) it is when the
        step began.

        Only this task sees it (an update or signal handler running meanwhile reads its own
        workflow task's time, as on replay), and only until the task next waits: the release
        is queued behind the running step, so it runs before anything the task awaits can
        resume it (after an activity, the time of the task that delivered it is the same on
        replay)."""
        hold: Hold = (asyncio.current_task(), at)
        self._held = hold
        asyncio.get_running_loop().call_soon(self._release, hold)

    def _release(self, hold: Hold) -> None:
        if self._held is hold:
            self._held = None
