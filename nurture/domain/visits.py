"""What the website tracker sends (docs/tracking.md), validated at the edge by the same rules
as ``/api/events`` and ``/api/leads``: a tracked event becomes a :class:`LeadEvent`, an
identification's fields a :class:`LeadProfile`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from nurture.domain.leads import (
    EDGE,
    EVENT_TYPE_PATTERN,
    URL_MAX,
    LeadEvent,
    LeadProfile,
    check_plain_text,
)

TRACKER_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
TRACKER_EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
EVENTS_PER_CALL_MAX = 50
TITLE_MAX = 300
PENDING_LEAD = "pending"
"""Stands for the lead while a visitor's input is checked, before anyone knows which lead."""

ConsentState = Literal["granted", "denied"]


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


class TrackedEvent(BaseModel):
    """One event as the tracker sends it (``id`` is the tracker's: a retried beacon carries
    the same one)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=TRACKER_EVENT_ID_PATTERN)
    type: str = Field(pattern=EVENT_TYPE_PATTERN)
    at: str = Field(description="RFC 3339, e.g. 2026-12-03T10:00:00.123Z")
    url: str | None = Field(default=None, max_length=URL_MAX)
    referrer: str | None = Field(default=None, max_length=URL_MAX)
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    props: dict[str, Any] = Field(default_factory=dict)
    _checked: LeadEvent = PrivateAttr()

    @model_validator(mode="after")
    def _as_lead_event(self) -> TrackedEvent:
        """The event must be one a lead takes from ``/api/events`` (the same edge bounds)."""
        for text in (self.referrer, self.title):
            if text is not None:
                check_plain_text(text)
        try:
            self._checked = LeadEvent.from_edge(
                {
                    "lead_id": PENDING_LEAD,
                    "type": self.type,
                    "at": self.at,
                    "url": self.url,
                    "props": self.props,
                },
                strict=True,
            )
        except ValidationError as exc:
            raise ValueError(_first_error(exc)) from None
        return self

    def as_lead_event(self) -> LeadEvent:
        """The event as ``/api/events`` takes it (under a stand-in lead id)."""
        return self._checked

    @property
    def happened_at(self) -> datetime:
        assert self._checked.at is not None
        return self._checked.at

    def extra_props(self) -> dict[str, Any]:
        """``props`` with the page's referrer and title, as a lead keeps them."""
        extra = {"referrer": self.referrer, "title": self.title}
        return {**self.props, **{k: v for k, v in extra.items() if v}}


class TrackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visitor: str = Field(pattern=TRACKER_ID_PATTERN)
    consent: ConsentState | None = None
    events: list[TrackedEvent] = Field(min_length=1, max_length=EVENTS_PER_CALL_MAX)


class IdentifyRequest(BaseModel):
    """Who the visitor is: a signed email-link ``token``, a ``lead_id``, or an ``email``;
    any profile field besides updates the lead (only the fields sent)."""

    model_config = ConfigDict(extra="allow")

    visitor: str = Field(pattern=TRACKER_ID_PATTERN)
    consent: ConsentState | None = None
    token: str | None = Field(default=None, max_length=1000)
    lead_id: str | None = None
    _profile: LeadProfile | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _who(self) -> IdentifyRequest:
        fields = dict(self.model_extra or {})
        if self.token is None and self.lead_id is None and not fields.get("email"):
            raise ValueError("say who the visitor is: 'email', 'lead_id' or 'token'")
        if self.lead_id is not None or fields:
            try:
                self._profile = LeadProfile.model_validate(
                    {"lead_id": self.lead_id or PENDING_LEAD, **fields},
                    context=EDGE,
                    strict=True,
                )
            except ValidationError as exc:
                raise ValueError(_first_error(exc)) from None
        return self

    def profile_fields(self) -> LeadProfile | None:
        """The profile fields sent (under a stand-in lead id), None when only who."""
        profile = self._profile
        if profile is None or not profile.sent_fields:
            return None
        return profile


FORM_FIELDS_MAX = 200
FormFieldValue = str | bool | int | float | None
"""A field as the tracker copies it: text, a checkbox's true or false, a number."""


class FormCapture(BaseModel):
    """The tracker's copy of a ``<form data-nurture-form="NAME">`` submission (a form that
    posts elsewhere), for ``POST /f/{site_key}/{form}``."""

    model_config = ConfigDict(extra="forbid")

    visitor: str | None = Field(default=None, pattern=TRACKER_ID_PATTERN)
    consent: ConsentState | None = None
    url: str | None = Field(
        default=None,
        max_length=URL_MAX,
        description="the page the form was on (recorded when it is on the posting origin)",
    )
    fields: dict[str, FormFieldValue | list[FormFieldValue]] = Field(
        max_length=FORM_FIELDS_MAX,
        description="every field of the form by its name (several values: a list); names "
        "the form's definition does not map are ignored",
    )
