"""What comes in from outside: lead profiles and behaviour events, validated at the edge.

These models are the contract for ``nurture lead add``/``nurture event`` input lines and for the
workflow's signals, so a malformed line is refused with a reason before it reaches a lead.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

LEAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$"
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
_EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

PROFILE_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "title",
    "company_size",
    "industry",
    "region",
    "country",
    "budget",
    "timeframe",
    "campaign",
    "timezone",
    "phone",
    "address",
)


class LeadProfile(BaseModel):
    """Who the lead is. ``custom`` holds any extra field a marketer wants to match on."""

    model_config = ConfigDict(extra="forbid")

    lead_id: str = Field(pattern=LEAD_ID_PATTERN)
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    company_size: int | None = Field(default=None, ge=0)
    industry: str | None = None
    region: str | None = None
    country: str | None = None
    budget: float | None = Field(default=None, ge=0)
    timeframe: str | None = None
    campaign: str | None = None
    timezone: str | None = Field(default=None, description="IANA zone, e.g. Europe/Berlin")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()./-]{4,40}$")
    address: str | None = Field(default=None, max_length=500, description="for direct mail")
    custom: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(_EMAIL_PATTERN, value):
            raise ValueError(f"not a valid email address: {value!r} (expected name@domain.tld)")
        return value

    def merged(self, update: LeadProfile) -> LeadProfile:
        """This profile with every field the update sets (custom fields merged too)."""
        changes = update.model_dump(exclude_unset=True, exclude={"lead_id", "custom"})
        custom = {**self.custom, **update.custom}
        return self.model_copy(update={**changes, "custom": custom})

    def fields(self) -> dict[str, Any]:
        """Flat view for conditions: profile fields plus ``custom.<name>``."""
        flat: dict[str, Any] = {name: getattr(self, name) for name in PROFILE_FIELDS}
        flat.update({f"custom.{k}": v for k, v in self.custom.items()})
        return flat

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email or self.lead_id


class LeadEvent(BaseModel):
    """One behaviour: a page view, a download, an email click, a call request…"""

    model_config = ConfigDict(extra="forbid")

    lead_id: str = Field(pattern=LEAD_ID_PATTERN)
    type: str = Field(pattern=EVENT_TYPE_PATTERN)
    at: datetime | None = None
    campaign: str | None = None
    url: str | None = None
    props: dict[str, Any] = Field(default_factory=dict)
    event_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-24T10:00:00Z")
        return value

    def with_identity(self) -> LeadEvent:
        """Give the event a stable id, so the same line sent twice counts once.

        An event without ``at`` has no identity of its own: a retried send of it cannot be
        told from a second real visit, so only events with ``at`` or ``event_id`` dedupe.
        """
        if self.event_id or self.at is None:
            return self
        canonical = json.dumps(
            self.model_dump(mode="json", exclude={"event_id"}), sort_keys=True, default=str
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]
        return self.model_copy(update={"event_id": f"ev-{digest}"})


def dedupe_marker(event_id: str) -> str:
    """A compact, fixed-size stand-in for an event id in a lead's de-duplication window."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


def workflow_id_for(lead_id: str) -> str:
    """The lead's workflow id: one workflow per lead, found again from the lead id alone."""
    return f"lead-{lead_id}"
