"""How one bad input or one bad rep action is kept from failing a lead: Temporal's own errors
pass, every other error is recorded on the lead and the lead goes on; a rep action is all or
nothing, refused with its reason, and visible at once.

No decision here; the module holds no state: it is passed through the sandbox and imported once
per worker process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError

from nurture.contract.messages import ActionResult, RepAction
from nurture.contract.shared_rules import RulesUnavailable
from nurture.core.base import RulesNotLoaded
from nurture.core.lead import LeadCore
from workflows.clock import AheadOfWorkflowTask


class Shell(Protocol):
    """The workflow, as a rep action sees it."""

    _core: LeadCore

    def _publish(self) -> None: ...


Self = TypeVar("Self", bound=Shell)
Request = TypeVar("Request", bound=BaseModel)

CONTROL_FLOW_ERRORS = (
    workflow.NondeterminismError,  # also RestrictedWorkflowAccessError: a bug to see, not skip
    workflow.ReadOnlyContextError,
    CancelledError,
    AheadOfWorkflowTask,  # fails the activation on purpose (workflows/clock.py)
    RulesUnavailable,  # fails the task until the worker can read the rules the history names
)
"""Temporal's own errors, the clock's refusal to run ahead of a workflow task, and rules a
history names that this worker cannot read yet: never swallowed as a bad input (asyncio's
cancellation and continue-as-new are BaseExceptions and pass anyway)."""


def rep_action(
    handler: Callable[[Self, Request], None],
) -> Callable[[Self, Request], ActionResult]:
    """Every action on the lead from outside (an update: a rep's, or the person's own choice
    of topics) goes through here, so none can forget that what it changed must be visible at
    once (search attributes, read model) and that one bad action must not fail the workflow
    task: the failure is recorded on the lead and refused to the caller."""

    @functools.wraps(handler)
    def applied(self: Self, request: Request) -> ActionResult:
        core = self._core
        undo = core.undo_point()
        try:
            handler(self, request)
            return core.result()
        except RulesNotLoaded as err:
            raise ApplicationError(str(err)) from None
        except (*CONTROL_FLOW_ERRORS, ApplicationError):  # ApplicationError: a refusal
            raise
        except Exception as err:
            undo()  # all or nothing: the action changed nothing
            who = request.rep if isinstance(request, RepAction) else "the person"
            what = f"{handler.__name__} by {who}"
            core.bad_input(what, err)
            raise ApplicationError(
                f"lead {core.state.lead_id}: {what} could not be applied: {err}",
                type="LeadActionFailed",
                non_retryable=True,
            ) from None
        finally:
            if core.patches.visible_updates:
                self._publish()

    return applied


def refuse_if(error: str | None) -> None:
    """An update's validator: refuse the action, naming why, before it reaches the history."""
    if error:
        raise ApplicationError(error, type="IllegalRepAction", non_retryable=True)
