"""Sites, their visitors and the visitors' anonymous events (docs/tracking.md).

A site key is public (it sits in the page); it only lets the pages of the site's origins send
tracking events and forms. A visitor is kept under a key derived from the site and the
tracker's own id (never the raw id). Its events are kept here while no lead is known for it,
under the id that makes a retried beacon count once; once the visitor is identified they are
handed to the lead and deleted. Nothing here is read inside a workflow.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Index, delete, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from nurture.contract.erasure import ERASED_PREFIX
from nurture.store.clock import utcnow
from nurture.store.personal import PERSONAL

ConsentMode = Literal["granted", "denied"]
SITE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SITE_KEY_PREFIX = "sk_"
ORIGINS_MAX = 20


class SiteError(ValueError):
    """A site cannot be created or changed as asked; the message says what to change."""


class Site(SQLModel, table=True):
    site_key: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=64, unique=True)
    origins: str = Field(description="JSON list of origins, e.g. https://www.example.com")
    consent_default: str = Field(default="granted", max_length=10)
    created_at: datetime
    revoked_at: datetime | None = None

    def origin_list(self) -> list[str]:
        return list(json.loads(self.origins))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "site_key": self.site_key,
            "origins": self.origin_list(),
            "consent_default": self.consent_default,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class Visitor(SQLModel, table=True):
    """A browser on one site. ``lead_id``: the lead it belongs to once identified."""

    __table_args__ = (Index("ix_visitor_last_seen_at", "last_seen_at"),)

    visitor_key: str = Field(primary_key=True, max_length=64)
    site_key: str = Field(max_length=64)
    lead_id: str | None = Field(default=None, index=True, max_length=200)
    identified_at: datetime | None = None
    first_seen_at: datetime
    last_seen_at: datetime
    ip: str | None = Field(default=None, max_length=64, sa_column_kwargs=PERSONAL)
    country: str | None = Field(default=None, max_length=64, sa_column_kwargs=PERSONAL)
    city: str | None = Field(default=None, max_length=200, sa_column_kwargs=PERSONAL)
    organisation: str | None = Field(default=None, max_length=200)
    """The network's owner (a company, an ISP): not a person."""


class VisitorEvent(SQLModel, table=True):
    """One event of a visitor no lead is known for yet."""

    __tablename__ = "visitorevent"
    __table_args__ = (
        Index("ix_visitorevent_visitor_at", "visitor_key", "at"),
        Index("ix_visitorevent_received_at", "received_at"),
    )

    event_id: str = Field(primary_key=True, max_length=64)
    visitor_key: str = Field(max_length=64)
    type: str = Field(max_length=64)
    at: datetime
    received_at: datetime
    url: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    props: str = Field(default="{}", sa_column_kwargs=PERSONAL)


@dataclass(frozen=True)
class Place:
    """Where a visit came from, as the IP database says (each part may be unknown)."""

    ip: str | None = None
    country: str | None = None
    city: str | None = None
    organisation: str | None = None


@dataclass(frozen=True)
class KeptEvent:
    """An anonymous event as kept, ready to be handed to a lead."""

    event_id: str
    type: str
    at: datetime
    url: str | None
    props: dict[str, Any]


# --- sites ---------------------------------------------------------------------------------


def normalised_origin(text: str) -> str:
    """``https://www.example.com`` from what an operator typed (a trailing slash, capitals);
    refused with why when it is not an origin (a path, no scheme, a wildcard)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SiteError(f"not an origin: {text!r}; expected e.g. https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise SiteError(
            f"an origin is a scheme, a host and an optional port, nothing else: {text!r}"
        )
    if "*" in parts.netloc:
        raise SiteError(f"no wildcards in origins: list each one ({text!r})")
    try:
        port = parts.port
    except ValueError as exc:
        raise SiteError(f"not an origin: {text!r} ({exc})") from None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def create_site(
    engine: Engine, name: str, origins: Sequence[str], consent_default: ConsentMode = "granted"
) -> Site:
    if not re.fullmatch(SITE_NAME_PATTERN, name):
        raise SiteError(
            f"a site name is 1 to 64 lower-case letters, digits, '_' or '-': {name[:64]!r}"
        )
    if not origins:
        raise SiteError("give the site at least one --origin, e.g. https://www.example.com")
    if len(origins) > ORIGINS_MAX:
        raise SiteError(f"at most {ORIGINS_MAX} origins per site")
    listed = sorted({normalised_origin(o) for o in origins})
    site = Site(
        site_key=SITE_KEY_PREFIX + secrets.token_urlsafe(18),
        name=name,
        origins=json.dumps(listed),
        consent_default=consent_default,
        created_at=utcnow(),
    )
    with Session(engine) as session:
        session.add(site)
        try:
            session.commit()
        except IntegrityError:
            raise SiteError(f"a site named {name!r} exists: revoke it first") from None
        session.refresh(site)
        return site


def ensure_site(
    engine: Engine, name: str, origins: Sequence[str], consent_default: ConsentMode = "granted"
) -> Site:
    """The live site named ``name`` with these origins: made when missing, its origins set
    when they differ (``nurture up``'s demo site follows its port)."""
    listed = json.dumps(sorted({normalised_origin(o) for o in origins}))
    with Session(engine) as session:
        site = session.exec(
            select(Site).where(col(Site.name) == name, col(Site.revoked_at).is_(None))
        ).first()
        if site is not None:
            if site.origins != listed:
                site.origins = listed
                session.add(site)
                session.commit()
                session.refresh(site)
            return site
    return create_site(engine, name, origins, consent_default)


def list_sites(engine: Engine, *, revoked: bool = False) -> list[Site]:
    with Session(engine) as session:
        query = select(Site).order_by(col(Site.created_at))
        if not revoked:
            query = query.where(col(Site.revoked_at).is_(None))
        return list(session.exec(query).all())


def revoke_site(engine: Engine, name_or_key: str) -> Site:
    with Session(engine) as session:
        site = session.exec(
            select(Site).where(
                (col(Site.name) == name_or_key) | (col(Site.site_key) == name_or_key),
                col(Site.revoked_at).is_(None),
            )
        ).first()
        if site is None:
            raise SiteError(f"no live site named {name_or_key!r} (see `nurture sites list`)")
        site.revoked_at = utcnow()
        # A revoked name may be used again: the old row keeps its key, under another name.
        site.name = f"{site.name[:40]}~revoked-{secrets.token_hex(4)}"
        session.add(site)
        session.commit()
        session.refresh(site)
        return site


def live_site(engine: Engine, site_key: str) -> Site | None:
    if not site_key.startswith(SITE_KEY_PREFIX) or len(site_key) > 64:
        return None
    with Session(engine) as session:
        site = session.get(Site, site_key)
        return site if site is not None and site.revoked_at is None else None


def site_origins(engine: Engine) -> set[str]:
    """Every live site's origins (links to them in our emails carry an identifying token)."""
    return {origin for site in list_sites(engine) for origin in site.origin_list()}


# --- visitors --------------------------------------------------------------------------------


def visitor_key(site_key: str, tracker_id: str) -> str:
    """The key a visitor is kept under: the tracker's id never reaches the database."""
    return hashlib.sha256(f"{site_key}\0{tracker_id}".encode()).hexdigest()[:40]


def event_key(site_key: str, tracker_id: str, tracker_event_id: str) -> str:
    """An event's id, the same however often the tracker sends it."""
    digest = hashlib.sha256(f"{site_key}\0{tracker_id}\0{tracker_event_id}".encode())
    return "trk-" + digest.hexdigest()[:40]


def is_forgotten(visitor: Visitor) -> bool:
    """Its lead was erased (the erasure put a pseudonym in ``lead_id``)."""
    return visitor.lead_id is not None and visitor.lead_id.startswith(ERASED_PREFIX)


def find_visitor(engine: Engine, key: str) -> Visitor | None:
    with Session(engine) as session:
        return session.get(Visitor, key)


SEEN_PRECISION = timedelta(minutes=1)
"""How finely a visitor's ``last_seen_at`` is kept: a known visitor's page views within a minute
of the last recorded one write nothing (the "visiting now" table counts in minutes)."""


def _same_place(visitor: Visitor, place: Place) -> bool:
    return not place.ip or (visitor.ip, visitor.country, visitor.city, visitor.organisation) == (
        place.ip,
        place.country,
        place.city,
        place.organisation,
    )


def seen(engine: Engine, key: str, site_key: str, place: Place, at: datetime) -> Visitor:
    """Record a visit of ``key`` (made on first sight); its latest place is kept. A visitor
    whose lead was erased stays as the erasure left it: nothing of a later visit is kept."""
    with Session(engine) as session:
        visitor = session.get(Visitor, key)
        if visitor is not None and is_forgotten(visitor):
            return visitor
        if visitor is None:
            visitor = Visitor(visitor_key=key, site_key=site_key, first_seen_at=at, last_seen_at=at)
        elif at - visitor.last_seen_at < SEEN_PRECISION and _same_place(visitor, place):
            return visitor  # nothing worth a write: a page view a second is a commit a second
        visitor.last_seen_at = max(visitor.last_seen_at, at)
        if place.ip:
            visitor.ip = place.ip
            visitor.country, visitor.city = place.country, place.city
            visitor.organisation = place.organisation
        session.add(visitor)
        try:
            session.commit()
        except IntegrityError:  # made at the same moment by another request: count on it
            session.rollback()
            return seen(engine, key, site_key, place, at)
        session.refresh(visitor)
        return visitor


def keep_events(engine: Engine, key: str, events: Sequence[KeptEvent], most: int) -> int:
    """Keep a visitor's anonymous events; return how many were new. A visitor keeps at most
    ``most``: the oldest go first."""
    if not events:
        return 0
    ids = [e.event_id for e in events]
    now = utcnow()
    with Session(engine) as session:
        known = set(
            session.exec(
                select(VisitorEvent.event_id).where(col(VisitorEvent.event_id).in_(ids))
            ).all()
        )
        fresh = {e.event_id: e for e in events if e.event_id not in known}  # twins in a batch
        for e in fresh.values():
            session.add(
                VisitorEvent(
                    event_id=e.event_id,
                    visitor_key=key,
                    type=e.type,
                    at=e.at,
                    received_at=now,
                    url=e.url,
                    props=json.dumps(e.props, sort_keys=True),
                )
            )
        try:
            session.commit()
        except IntegrityError:  # the same beacon twice at once: one at a time, then
            session.rollback()
            return sum(keep_events(engine, key, [e], most) for e in fresh.values())
        _bound(session, key, most)
        return len(fresh)


def _bound(session: Session, key: str, most: int) -> None:
    kept = session.exec(
        select(func.count()).select_from(VisitorEvent).where(col(VisitorEvent.visitor_key) == key)
    ).one()
    if kept > most:
        oldest = (
            select(VisitorEvent.event_id)
            .where(col(VisitorEvent.visitor_key) == key)
            .order_by(col(VisitorEvent.at), col(VisitorEvent.event_id))
            .limit(kept - most)
        )
        session.exec(  # type: ignore[call-overload]
            delete(VisitorEvent).where(col(VisitorEvent.event_id).in_(oldest))
        )
    session.commit()


def kept_events(engine: Engine, key: str) -> list[KeptEvent]:
    """The visitor's anonymous events, oldest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(VisitorEvent)
            .where(col(VisitorEvent.visitor_key) == key)
            .order_by(col(VisitorEvent.at), col(VisitorEvent.event_id))
        ).all()
        return [
            KeptEvent(
                event_id=r.event_id, type=r.type, at=r.at, url=r.url, props=json.loads(r.props)
            )
            for r in rows
        ]


def handed_over(engine: Engine, key: str, event_id: str) -> None:
    """The event reached its lead: it is the lead's now."""
    with Session(engine) as session:
        session.exec(  # type: ignore[call-overload]
            delete(VisitorEvent).where(
                col(VisitorEvent.visitor_key) == key, col(VisitorEvent.event_id) == event_id
            )
        )
        session.commit()


def link(engine: Engine, key: str, lead_id: str, at: datetime) -> str | None:
    """The visitor belongs to ``lead_id`` from now on; returns the lead it belonged to."""
    with Session(engine) as session:
        visitor = session.get(Visitor, key)
        if visitor is None:
            raise KeyError(key)
        before = visitor.lead_id
        if before != lead_id:
            visitor.lead_id, visitor.identified_at = lead_id, at
            session.add(visitor)
            session.commit()
        return before


def forget_expired(engine: Engine, received_before: datetime) -> int:
    """Delete anonymous events received before ``received_before`` (retention); return how
    many. Visitors left with nothing, and never identified, go too."""
    with Session(engine) as session:
        gone = session.exec(  # type: ignore[call-overload]
            delete(VisitorEvent).where(col(VisitorEvent.received_at) < received_before)
        ).rowcount
        session.exec(  # type: ignore[call-overload]
            delete(Visitor).where(
                col(Visitor.lead_id).is_(None),
                col(Visitor.last_seen_at) < received_before,
            )
        )
        session.commit()
        return int(gone or 0)
