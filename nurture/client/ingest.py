"""Getting many profiles and events to their leads: the one pipeline behind ``POST /api/events``,
``POST /api/leads``, ``POST /api/leads/import`` and ``nurture lead add`` / ``nurture event``.

An event type scoring does not know is refused with the types it does know. Items reach their
leads through :class:`LeadDelivery`: one lead's items in the order given, different leads in
parallel, and a lead's later items held back once one of its items failed, so that a retry sends
them again in order. Temporal refusing an item itself is permanent (the caller's error); not
reaching Temporal is temporary (retry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nurture.client.starting import send_event, send_profile
from nurture.contract.messages import TASK_QUEUE
from nurture.domain.leads import LeadEvent, LeadProfile

IN_FLIGHT = 64
"""Items on their way to Temporal at once (each a signal-with-start)."""

SuppressionCheck = Callable[[str], str | None]
"""Why an address is on the suppression list (None: it is not); blocking (a database read)."""

SalesReady = Callable[[LeadEvent], bool]
"""Whether an event hands its lead to sales at once (the rules' ``instant_qualify`` types):
such an event puts its lead ahead in Temporal's queues (``nurture.client.lead_priority``)."""


def never_sales_ready(event: LeadEvent) -> bool:
    return False


def unknown_event_type(event: LeadEvent, known: set[str] | None) -> str | None:
    """Why ``event`` is refused when the rules' scoring does not know its type (None: it does,
    or the rules could not be read to tell)."""
    if known is None or event.type in known:
        return None
    return f"unknown event type {event.type!r}; scoring.yaml knows {', '.join(sorted(known))}"


@dataclass(frozen=True)
class Delivered:
    """What became of one item: ``accepted`` by its lead's workflow, ``rejected`` by Temporal
    for good (sending it again cannot help), or ``failed`` for now (retry)."""

    status: Literal["accepted", "rejected", "failed"]
    reason: str | None = None
    kind: Literal["refused", "unavailable"] | None = None
    note: str | None = None
    """What the sender should know about an accepted item (its address is suppressed)."""


class LeadDelivery:
    """Sends items to their leads (signal-with-start, so a lead's first item starts it)."""

    def __init__(
        self,
        client: Client,
        task_queue: str = TASK_QUEUE,
        in_flight: int = IN_FLIGHT,
        suppression: SuppressionCheck | None = None,
        sales_ready: SalesReady = never_sales_ready,
    ) -> None:
        """``suppression``: a profile whose address is on the list starts its lead suppressed
        (an erased person re-imported by mistake is never emailed), and says so;
        ``sales_ready``: which events put their lead ahead of nurture work."""
        self.client = client
        self.task_queue = task_queue
        self.suppression = suppression
        self.sales_ready = sales_ready
        self._gate = asyncio.Semaphore(in_flight)
        self._turns: dict[str, asyncio.Lock] = {}
        self._failed: set[str] = set()

    async def deliver(self, item: LeadEvent | LeadProfile) -> Delivered:
        """Deliver ``item`` after the items of its lead handed in before it. Call in the order
        the items came (as tasks, for parallel leads)."""
        lead = item.lead_id
        async with self._turns.setdefault(lead, asyncio.Lock()), self._gate:
            if lead in self._failed:  # keep the order: a retry sends the rest after that one
                return Delivered(
                    "failed", "not sent: an earlier item for this lead failed; retry", "unavailable"
                )
            outcome = await self._send(item)
            if outcome.status != "accepted":
                self._failed.add(lead)
            return outcome

    async def _send(self, item: LeadEvent | LeadProfile) -> Delivered:
        suppressed = None
        try:
            if isinstance(item, LeadEvent):
                await send_event(
                    self.client, item, self.task_queue, sales_ready=self.sales_ready(item)
                )
            else:
                if self.suppression is not None and item.email:
                    suppressed = await asyncio.to_thread(self.suppression, item.email)
                await send_profile(
                    self.client, item, task_queue=self.task_queue, suppressed=suppressed
                )
        except RPCError as exc:
            if permanent(exc):
                return Delivered(
                    "rejected", f"refused by Temporal, do not retry: {exc.message}", "refused"
                )
            return Delivered("failed", f"not delivered, retry: {exc.message}", "unavailable")
        except Exception as exc:  # the item is reported, with why it did not reach its lead
            return Delivered("failed", f"not delivered, retry: {exc}", "unavailable")
        if suppressed:
            return Delivered("accepted", note=suppressed_note(suppressed))
        return Delivered("accepted")


def suppressed_note(reason: str) -> str:
    return (
        f"email: the address is on the suppression list ({reason}): the lead is suppressed "
        "and will never be emailed"
    )


def permanent(exc: RPCError) -> bool:
    """Temporal refused the item itself (e.g. "Blob data size exceeds limit"): sending it again
    cannot help, so it is the client's error (4xx), not an outage (503)."""
    return exc.status == RPCStatusCode.INVALID_ARGUMENT or "exceeds limit" in exc.message
