"""What the lead's core asks its workflow to do, and the queues it leaves work in.

The core never calls Temporal. A step that needs the world's answer before it can go on (the
rules as they are now, whether an email went out, which rep routing picked, the new task's
number) *yields* one of the asks below and is resumed with the answer; the workflow carries
each ask out as an activity, in the order asked, so the commands a lead records are the ones it
always recorded. An activity that failed for good is answered with :class:`Failed`.

Work that needs no answer is left in queues, worked off in order by the workflow: rep alerts,
task closures and transition records (``effects``), CRM writes and read-model facts (a
:class:`Queue` each; the workflow's are pumps that start as work arrives).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nurture.contract.messages import AssignRequest, EmailRequest, TaskRequest

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class ReadRules:
    """The rules, when they changed since ``known_version`` (answered ``Rules | None``)."""

    known_version: str


@dataclass(frozen=True)
class SendEmail:
    """Send this email now, exactly once by its key (answered ``EmailResult`` or Failed)."""

    request: EmailRequest


@dataclass(frozen=True)
class CreateTask:
    """Put this task in the inside-sales queue (answered its number, ``int``, or Failed)."""

    request: TaskRequest


@dataclass(frozen=True)
class AssignRep:
    """Pick the rep who takes the lead (answered ``str | None``, or Failed)."""

    request: AssignRequest


Ask = ReadRules | SendEmail | CreateTask | AssignRep


@dataclass(frozen=True)
class Failed:
    """The answer to an ask whose activity failed for good."""

    message: str
    unrenderable: str | None = None
    """Why the email could not be rendered, when that is why it failed (a template error is
    the marketer's to fix, not the lead's)."""
    kind: str = ""
    """The failure's type (e.g. ``SendGridRejected``): what logs say, since the message may
    quote the lead's data."""


Step = Generator[Ask, Any, Result]
"""A step of the lead: runs until it needs an answer, yields the ask, is sent the answer."""


class Queue(Generic[Item]):
    """Work left for the workflow, in order. ``put`` adds to it and calls :meth:`start`,
    which a workflow's queue overrides to start working it off; ``items`` stays the same list
    for the queue's life (work is taken off its front, undone work is truncated in place).
    ``added`` and ``taken`` count what was put and what was worked off (the metrics')."""

    def __init__(self, items: list[Item] | None = None) -> None:
        self.items: list[Item] = list(items or [])
        self.added = 0
        self.taken = 0

    def put(self, *items: Item) -> None:
        self.items.extend(items)
        self.added += len(items)
        self.start()

    def start(self) -> None:
        """Nothing to start here: the work waits in ``items``."""
