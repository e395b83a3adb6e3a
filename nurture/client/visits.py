"""Website visits to leads (docs/tracking.md): a known visitor's events go to its lead through
the ingest pipeline of ``/api/events``; an unknown visitor's are kept until it is identified,
then handed to the lead oldest first with their own times, each under an id the lead counts
once, and deleted only once the lead has accepted them."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from nurture.access.visitor_links import IdentifyLinkError, IdentifyLinks
from nurture.client.ingest import (
    LeadDelivery,
    SalesReady,
    SuppressionCheck,
    never_sales_ready,
)
from nurture.config.tracking_settings import TrackingSettings
from nurture.contract.messages import TASK_QUEUE
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.visits import PENDING_LEAD, TrackedEvent
from nurture.privacy.erasure import lead_status
from nurture.store import tracking
from nurture.store.clock import utcnow
from nurture.store.lead_lookup import leads_holding
from nurture.store.tracking import KeptEvent, Place, Site

log = structlog.get_logger(__name__)

SWEEP_EVERY_SECONDS = 600.0
"""How often a process deletes anonymous visits past their retention (while it is used)."""
PLACE_FIELDS = {"country": "visit_country", "city": "visit_city", "organisation": "visit_org"}
"""Where a visit's place goes in a lead's custom fields (its own country field is what the
person says, and is left alone)."""


class VisitRefused(ValueError):
    """What the visitor sent cannot be applied (permanent: 422); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class VisitsUnavailable(Exception):
    """Temporal could not be reached: nothing was lost, the caller should retry (503)."""


@dataclass(frozen=True)
class Recorded:
    kept: int = 0
    """anonymous events stored (new ones)"""
    delivered: int = 0
    """events handed to the visitor's lead"""
    dropped: int = 0
    """duplicates, and the events of a visitor whose lead was erased"""


class Visits:
    def __init__(
        self,
        client: Client,
        engine: Engine,
        links: IdentifyLinks,
        settings: TrackingSettings,
        task_queue: str = TASK_QUEUE,
        suppression: SuppressionCheck | None = None,
        clock: Callable[[], datetime] = utcnow,
        sales_ready: SalesReady = never_sales_ready,
    ) -> None:
        self.client, self.engine, self.links = client, engine, links
        self.settings = settings
        self.task_queue = task_queue
        self.suppression = suppression
        self.sales_ready = sales_ready
        self.clock = clock
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._swept_at = 0.0

    # --- events ---------------------------------------------------------------------------

    async def record(
        self, site: Site, tracker_id: str, events: list[TrackedEvent], place: Place
    ) -> Recorded:
        """Events of one visitor, given to its lead or kept until it is known."""
        key = tracking.visitor_key(site.site_key, tracker_id)
        kept = [_kept(site, tracker_id, e, place) for e in sorted(events, key=_when)]
        async with self._turn(key):
            visitor = await asyncio.to_thread(
                tracking.seen, self.engine, key, site.site_key, place, self.clock()
            )
            lead = visitor.lead_id
            if tracking.is_forgotten(visitor):
                return Recorded(dropped=len(kept))
            if lead is None:
                new = await asyncio.to_thread(
                    tracking.keep_events,
                    self.engine,
                    key,
                    kept,
                    self.settings.visits_per_visitor,
                )
                await self._sweep()
                return Recorded(kept=new, dropped=len(kept) - new)
            delivery = self._delivery()
            await self._hand_over(delivery, key, lead)  # any left from a failed try, first
            for event in kept:
                await _deliver(delivery, _lead_event(lead, event, anonymous=False))
            return Recorded(delivered=len(kept))

    async def send(self, item: LeadEvent | LeadProfile) -> None:
        """One item to its lead through the ingest pipeline (a form's ``form_fill``, after
        :meth:`identify` handed over the visits before it)."""
        await _deliver(self._delivery(), item)

    # --- identification -------------------------------------------------------------------

    async def identify(
        self,
        site: Site,
        tracker_id: str | None,
        *,
        token: str | None = None,
        lead_id: str | None = None,
        profile: LeadProfile | None = None,
        place: Place = Place(),  # noqa: B008  (frozen)
    ) -> str:
        """Join the visitor (if the page has one) to the lead named by ``token``,
        ``lead_id`` or ``profile.email`` (see docs/tracking.md), update the lead with the
        ``profile`` fields sent, and hand it the visitor's kept events. Returns the lead id
        (for the service's own use: never told to the page)."""
        lead = await self._lead_for(token, lead_id, profile)
        delivery = self._delivery()
        if profile is not None and profile.sent_fields:
            await _deliver(delivery, profile.model_copy(update={"lead_id": lead}))
        if tracker_id is None:
            return lead
        key = tracking.visitor_key(site.site_key, tracker_id)
        async with self._turn(key):
            await asyncio.to_thread(
                tracking.seen, self.engine, key, site.site_key, place, self.clock()
            )
            before = await asyncio.to_thread(tracking.link, self.engine, key, lead, self.clock())
            if before != lead:
                log.info("visitor identified", lead_id=lead, again=before is not None)
                if where := _place_fields(lead, place):
                    await _deliver(delivery, where)
            await self._hand_over(delivery, key, lead)
        return lead

    async def _lead_for(
        self, token: str | None, lead_id: str | None, profile: LeadProfile | None
    ) -> str:
        if token is not None:
            try:
                lead = self.links.lead_of(token)
            except IdentifyLinkError as exc:
                raise VisitRefused("token", str(exc)) from None
            if not await self._running(lead):
                raise VisitRefused("token", "the link's lead no longer exists")
            return lead
        if lead_id is not None and lead_id != PENDING_LEAD:
            if not await self._running(lead_id):
                raise VisitRefused("lead_id", f"no lead {lead_id!r}")
            return lead_id
        if profile is None or not profile.email:
            raise VisitRefused("email", "say who the visitor is: 'email', 'lead_id' or 'token'")
        holders = await asyncio.to_thread(leads_holding, self.engine, profile.email)
        return holders[0].lead_id if holders else self.links.new_lead_id(profile.email)

    async def _running(self, lead_id: str) -> bool:
        try:
            status = await lead_status(self.client, lead_id)
        except RPCError as exc:
            raise VisitsUnavailable(f"Temporal could not be asked: {exc.message}") from None
        return status == WorkflowExecutionStatus.RUNNING

    # --- handing kept events over ---------------------------------------------------------

    async def _hand_over(self, delivery: LeadDelivery, key: str, lead: str) -> int:
        """Give the lead the visitor's kept events, oldest first; each is deleted once the lead
        accepted it (a failure leaves it and the ones after it for the next try)."""
        pending = await asyncio.to_thread(tracking.kept_events, self.engine, key)
        for event in pending:
            outcome = await delivery.deliver(_lead_event(lead, event, anonymous=True))
            if outcome.status == "failed":
                raise VisitsUnavailable(outcome.reason or "not delivered")
            if outcome.status == "rejected":  # the lead can never take it: do not block the rest
                log.warning("anonymous event refused by its lead", lead_id=lead, kind=outcome.kind)
            await asyncio.to_thread(tracking.handed_over, self.engine, key, event.event_id)
        if pending:
            log.info("anonymous visits handed over", lead_id=lead, events=len(pending))
        return len(pending)

    # --- housekeeping ---------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Delete anonymous events past retention, at most every few minutes per process."""
        if time.monotonic() - self._swept_at < SWEEP_EVERY_SECONDS:
            return
        self._swept_at = time.monotonic()
        cutoff = self.clock() - self.settings.keep_anonymous_visits
        gone = await asyncio.to_thread(tracking.forget_expired, self.engine, cutoff)
        if gone:
            log.info("anonymous visits past retention deleted", events=gone)

    def _delivery(self) -> LeadDelivery:
        return LeadDelivery(
            self.client,
            self.task_queue,
            suppression=self.suppression,
            sales_ready=self.sales_ready,
        )

    def _turn(self, key: str) -> asyncio.Lock:
        """One request at a time per visitor in this process (its events stay in order); a
        lock lives while someone holds or awaits it."""
        lock = self._turns.get(key)
        if lock is None:
            lock = self._turns[key] = asyncio.Lock()
        return lock


async def _deliver(delivery: LeadDelivery, item: LeadEvent | LeadProfile) -> None:
    outcome = await delivery.deliver(item)
    if outcome.status == "failed":
        raise VisitsUnavailable(outcome.reason or "not delivered")
    if outcome.status == "rejected":
        raise VisitRefused("", outcome.reason or "refused by Temporal")


def _when(event: TrackedEvent) -> datetime:
    return event.happened_at


def _kept(site: Site, tracker_id: str, event: TrackedEvent, place: Place) -> KeptEvent:
    where = {
        name: value
        for field, name in PLACE_FIELDS.items()
        if (value := getattr(place, field)) is not None
    }
    return KeptEvent(
        event_id=tracking.event_key(site.site_key, tracker_id, event.id),
        type=event.type,
        at=event.happened_at,
        url=event.url,
        props={**event.extra_props(), **where, "site": site.name},
    )


def _lead_event(lead: str, event: KeptEvent, *, anonymous: bool) -> LeadEvent:
    props = {**event.props, "anonymous": True} if anonymous else event.props
    return LeadEvent(
        lead_id=lead,
        type=event.type,
        at=event.at,
        url=event.url,
        props=props,
        event_id=event.event_id,
    )


def _place_fields(lead: str, place: Place) -> LeadProfile | None:
    custom = {
        name: value[:200]
        for field, name in PLACE_FIELDS.items()
        if (value := getattr(place, field)) is not None
    }
    if not custom:
        return None
    return LeadProfile(lead_id=lead, custom=custom, sent_fields=["custom"])
