"""The lead's clock: the workflow's time, except right after a local activity resolves, and
never a time the history has already left behind.

No decision here: the workflow reads the time through :meth:`HeldClock.now` and holds it
(:meth:`HeldClock.hold`) as each rules read resolves; :meth:`HeldClock.watch` checks every
activation, including those that read no time. The module holds no state of its own: it is
passed through the sandbox and imported once per worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any, NoReturn

from temporalio import workflow

from nurture.contract.names import AHEAD_OF_WORKFLOW_TASK, AHEAD_OF_WORKFLOW_TASK_ERROR

Hold = tuple[asyncio.Task[Any] | None, datetime]


class AheadOfWorkflowTask(Exception):
    """The workflow is given history events that no workflow task has started yet.

    A query sent while no workflow task is pending is handed to a worker directly, with the
    history as it is when the worker picks the query up. When a timer fired (or a signal or
    an activity result arrived) in between, that history ends in events after the last
    workflow task: the SDK's core delivers them to the workflow then, outside any workflow
    task (not as a replay), with the clock of the last task, and sends what the workflow does
    with them as the commands of the next workflow task (the workflow is not activated for
    that task). A replay delivers the same events in that next task, with its own later time:
    a decision taken on the earlier time (an SLA miss not yet due, a timer of the old length)
    is not what the replay decides, and the lead can never be replayed again (TMPRL1100).

    Raised instead of deciding anything: it fails that activation, so the query fails (the
    client asks again). The core keeps the run in its cache after a failed query activation,
    and with the next query it delivers the same events again, marked as replay: a lead
    deciding on them then sent commands beside the query's answer, which the core refuses as
    malformed, and the run's workflow task failed on every attempt for minutes (seen in the
    dev-server restart drill). So a refusal is final for the instance: every later activation
    that is not a query handler is refused too, replay or not, until the core drops the run
    from its cache (after such a refused query, or when the run's next workflow task fails with
    it); the next workflow task then replays the history from the start and delivers the events
    with the right time. Never raised in a query handler or on a genuine replay, and never
    caught by the lead's own error handling."""


# Clients recognise the refusal by this type's name (its message reaches them encrypted).
assert AheadOfWorkflowTask.__name__ == AHEAD_OF_WORKFLOW_TASK_ERROR


class HeldClock:
    def __init__(self) -> None:
        self._held: Hold | None = None
        # The workflow time last seen, and the history length it was first seen with.
        self._task_began: tuple[datetime, int] | None = None
        self._refused: AheadOfWorkflowTask | None = None  # once refused, refused for good

    def now(self) -> datetime:
        self.check_in_workflow_task()
        held = self._held
        if held is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing is held
                if asyncio.current_task() is held[0]:
                    return held[1]
        return workflow.now()

    def check_in_workflow_task(self) -> None:
        """Raise :class:`AheadOfWorkflowTask` when this activation brings new history events
        but no new time.

        Each workflow task brings its own start time (a later one: the server's clock at the
        task's started event) and every activation in it sees that time; the history length
        grows from one task to the next. Events delivered outside a workflow task grow the
        history and keep the last task's time. On replay the time also moves with local
        activity markers; nothing is checked there (a replay is its own reference)."""
        if workflow.unsafe.is_read_only():  # a query or a validator: nothing is decided
            return
        if self._refused is not None:
            raise AheadOfWorkflowTask(f"{self._refused} (refused before on this instance)")
        at, length = workflow.now(), workflow.info().get_current_history_length()
        began = self._task_began
        if began is None or began[0] != at:
            self._task_began = (at, length)
        elif length > began[1] and not workflow.unsafe.is_replaying():
            self._refuse(
                f"its history grew from {began[1]} to {length} events outside a workflow "
                f"task, its clock still reads that task's time ({at.isoformat()}); nothing is "
                "decided on the new events until their workflow task replays them"
            )

    def check_reached(self, deadline: datetime | None) -> None:
        """Raise :class:`AheadOfWorkflowTask` when a timer for ``deadline`` has fired and the
        clock reads earlier: the timer fired at or after its deadline, and the workflow task
        that delivers it started later still; only an activation outside a workflow task
        reads the time of a task before it. Exact for every timer, even where
        :meth:`check_in_workflow_task` cannot tell (a workflow task that brought the workflow
        nothing new, as after a local activity's result replayed from its marker, leaves its
        time unseen)."""
        if self._refused is not None:
            self.check_in_workflow_task()
        if deadline is None or workflow.unsafe.is_replaying():
            return
        at = workflow.now()
        if at < deadline:
            self._refuse(
                f"its timer for {deadline.isoformat()} fired, its clock still reads "
                f"{at.isoformat()}; nothing is decided until the timer's workflow task "
                "replays it"
            )

    def _refuse(self, why: str) -> NoReturn:
        self._refused = AheadOfWorkflowTask(
            f"workflow {workflow.info().workflow_id} is {AHEAD_OF_WORKFLOW_TASK}: {why}"
        )
        raise self._refused

    async def watch(self) -> None:
        """Check every activation that runs the workflow, not only those that read the time
        (a condition is evaluated in each of them; this one never comes true)."""

        def never_true() -> bool:
            self.check_in_workflow_task()
            return False

        await workflow.wait_condition(never_true)

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
