"""What comes in from outside: lead profiles and behaviour events, validated at the edge.

These models are the contract for ``nurture lead add``/``nurture event`` input lines, for the
HTTP ingest API and for the workflow's signals, so a malformed line is refused with a reason
before it reaches a lead.

Two kinds of checks. The field types hold everywhere. The *edge bounds* (sizes, dates, time
zones, no personal data in ids…) hold for input from outside, validated with
``context=EDGE`` (``LeadEvent.from_edge``/``LeadProfile.from_edge``): they keep out what a lead
cannot take (a date its arithmetic overflows on, a payload over Temporal's 2 MB limit, nesting
the worker cannot deserialize). Payloads already recorded in workflow histories are read
without them, so a running lead replays what it was once sent exactly as before.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from nurture.domain.utc_offsets import offset_text, real_utc_offsets

LEAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$"
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
CAMPAIGN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CUSTOM_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
_EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# The edge rules as JSON Schema (ECMA-262) patterns, for the HTTP API's request schemas.
EDGE_LEAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}$"  # LEAD_ID_PATTERN without '@'
_NOT_CONTROL = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f"
PLAIN_TEXT_PATTERN = rf"^[^{_NOT_CONTROL}]*$"
_EMAIL_ATOM = rf'[^@\s"(),:;<>\[\]\\.{_NOT_CONTROL}]+'  # RFC 5322 atext (and UTF-8)
_EMAIL_LABEL = r"[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\u0080-\uffff-]*[A-Za-z0-9\u0080-\uffff])?"
EDGE_EMAIL_PATTERN = rf"^{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL})+$"
"""An address a mail provider takes: dot-separated atoms before the @ (no spaces, brackets,
quotes or commas), a domain of two or more labels. Checked where addresses come in; leads
recorded before keep theirs (``_EMAIL_PATTERN``)."""
# C0 controls (NUL, ESC…) and lone surrogates: PostgreSQL refuses NUL in text, and a lone
# surrogate cannot be encoded as UTF-8 for a Temporal payload. Tab and line breaks are text.
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

EDGE: Final[dict[str, bool]] = {"edge": True}
"""Validation context for input from outside: ``Model.model_validate(raw, context=EDGE)``."""

# --- edge bounds -------------------------------------------------------------------------------
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)  # clocks of websites and trackers drift; years do not
TEXT_MAX: Final[dict[str, int]] = {
    "email": 254,
    "first_name": 100,
    "last_name": 100,
    "company": 200,
    "title": 200,
    "industry": 100,
    "region": 64,
    "country": 64,
    "timeframe": 64,
    "campaign": 64,
    "timezone": 64,
    "phone": 40,
    "address": 500,
}
COMPANY_SIZE_MAX = 10_000_000
AMOUNT_MAX = 1e15  # budgets and custom numbers: finite, and exact enough as a float
CUSTOM_KEYS_MAX = 50
CUSTOM_TEXT_MAX = 1000
URL_MAX = 2048
PROPS_DEPTH_MAX = 8
PROPS_BYTES_MAX = 16 * 1024
PROFILE_BYTES_MAX = 64 * 1024
"""The largest a lead's profile can get (all fields and CUSTOM_KEYS_MAX custom fields at their
limits serialize to ~60 KiB): a profile travels in signals, activity inputs and the lead's
state, all under Temporal's 2 MB payload limit."""

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


_DATETIME: Final = TypeAdapter(datetime)
# JSON Schema's format date-time (RFC 3339); without an offset it is refused as such, by name.
_DATE_TIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _at_edge(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("edge"))


def _check_lead_id(value: str) -> str:
    """Lead ids become workflow ids and are visible in Temporal's UI and search, which are not
    encrypted: an id made of an email address is personal data there. (A leading '+', as in
    a phone number, is already refused by LEAD_ID_PATTERN.)"""
    if "@" in value:
        raise ValueError(
            "a lead id must not contain '@': it is visible in Temporal (workflow ids, search), "
            "where personal data such as an email address must not go; use your CRM's record "
            "id or another opaque id (e.g. a hash of the address), and send the address as "
            "'email'"
        )
    return value


def _check_campaign(value: str | None) -> str | None:
    """Campaign names become the LeadCampaign search attribute: a slug, never free text."""
    if value is not None and not re.fullmatch(CAMPAIGN_PATTERN, value):
        raise ValueError(
            "a campaign name is a slug: 1 to 64 letters, digits, '.', '_' or '-', e.g. "
            "webinar-q4 (it is visible in Temporal search, so never a person's data)"
        )
    return value


def _check_text(value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"too long: {len(value):,} characters, at most {limit:,}")
    return check_plain_text(value)


def check_plain_text(value: str) -> str:
    """Refuse what no lead, database or payload can hold: C0 control characters other than
    tab and line breaks (PostgreSQL refuses NUL), and lone surrogates (not UTF-8)."""
    bad = _FORBIDDEN_CHARACTERS.search(value)
    if bad:
        raise ValueError(
            f"contains the control character or lone surrogate U+{ord(bad.group()):04X} at "
            f"position {bad.start()}: send plain text"
        )
    return value


def _edge_time_text(value: object) -> object:
    """JSON has no date type: at the edge a date is RFC 3339 text (the schema's format
    date-time), parsed here so that strict validation (JSON items) takes it while refusing a
    number."""
    if not isinstance(value, str):
        return value
    if not _DATE_TIME_TEXT.fullmatch(value):  # not "1700000000", "2026-11-24" or a week
        raise ValueError(
            f"not a date and time: {value[:40]!r}; send RFC 3339, e.g. 2026-11-24T10:00:00Z"
        )
    try:
        return _DATETIME.validate_python(value)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"]) from None


def _plausible(value: datetime, when: str) -> datetime:
    """A time a lead can do date arithmetic on (decay, windows, timers): year 9999, or an
    offset that pushes it past the datetime range, would fail every workflow task."""
    offset = value.utcoffset() or timedelta(0)
    if offset not in real_utc_offsets():
        raise ValueError(
            f"UTC offset {offset_text(offset)} is no time zone's: send the offset of the "
            "place's zone at that time, e.g. +05:30 or -03:00 (or Z)"
        )
    if value < EARLIEST_EVENT:
        raise ValueError(f"before 2000-01-01: send when {when}")
    if value > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise ValueError(f"more than a day in the future: send when {when}")
    return value


def _check_number(value: float) -> float:
    if not math.isfinite(value) or abs(value) > AMOUNT_MAX:
        raise ValueError(f"must be a finite number between -{AMOUNT_MAX:g} and {AMOUNT_MAX:g}")
    return value


def _props_problem(value: object, depth: int = 1) -> str | None:
    """What is wrong with a ``props`` value, if anything (stops below the depth limit, so
    hostile nesting costs nothing)."""
    if isinstance(value, dict | list):
        if depth > PROPS_DEPTH_MAX:
            return f"nested deeper than {PROPS_DEPTH_MAX} levels: flatten it"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            problem = (_text_problem(key) if isinstance(key, str) else None) or _props_problem(
                item, depth + 1
            )
            if problem:
                return problem
        return None
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite (no NaN or Infinity)"
    return None


def _text_problem(value: str) -> str | None:
    try:
        _check_text(value, PROPS_BYTES_MAX)
    except ValueError as exc:
        return str(exc)
    return None


class LaterFieldsOmitted(BaseModel):
    """A model carried in recorded histories whose fields in ``LATER_FIELDS`` came after them:
    left out of its JSON while empty, so a model recorded before serializes as it did (the
    traces of ``tests/test_replay_trace.py`` compare it byte for byte)."""

    LATER_FIELDS: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_empty_later_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self.LATER_FIELDS:
                if name in data and not data[name]:
                    del data[name]
        return data


class _FromOutside(BaseModel):
    """What both kinds of input share: the lead id and campaign rules, and ``from_edge``."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_edge(cls, raw: object, *, strict: bool = False) -> Self:
        """Input from outside (HTTP, CLI, CSV), under the edge bounds. ``strict``: JSON items,
        whose types are what the schema says (``"at": 0`` is not a date, ``"budget": false``
        not a number); a CSV's cells are all text and are converted."""
        return cls.model_validate(raw, context=EDGE, strict=strict)

    @field_validator("lead_id", check_fields=False)
    @classmethod
    def _no_personal_id(cls, value: str, info: ValidationInfo) -> str:
        return _check_lead_id(value) if _at_edge(info) else value

    @field_validator("campaign", check_fields=False)
    @classmethod
    def _campaign_slug(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_campaign(value) if _at_edge(info) else value


def _constrain(schema: dict[str, Any], kind: str, **rules: Any) -> None:
    """Add ``rules`` to the ``kind`` branch of a field's schema (``str | None`` is an anyOf)."""
    branches = schema.get("anyOf", [schema])
    for branch in branches:
        if branch.get("type") == kind:
            branch.update(rules)


def _edge_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with the edge rules JSON Schema can state (the rules no schema
    can state, e.g. ``at`` relative to now, are in the field descriptions)."""
    schema = model.model_json_schema()
    properties = schema["properties"]
    _constrain(properties["lead_id"], "string", pattern=EDGE_LEAD_ID_PATTERN)
    _constrain(properties["campaign"], "string", pattern=CAMPAIGN_PATTERN)
    return schema


ConsentSource = Literal["form", "import", "api", "double_opt_in"]
CONSENT_TEXT_MAX = 5000
CONSENT_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class ConsentGiven(BaseModel):
    """How and when the person agreed to be emailed, as the system that asked them says it:
    sent with a profile (``"consent": {...}``), kept by the lead as evidence, never rendered
    (``text`` is what the person was shown, kept as plain text even if it holds markup)."""

    model_config = ConfigDict(extra="forbid")

    source: ConsentSource = Field(
        description="how it was obtained: form, import, api or double_opt_in"
    )
    text: str | None = Field(
        default=None, description=f"the wording shown, plain text up to {CONSENT_TEXT_MAX:,}"
    )
    version: str | None = Field(
        default=None, description="the version of the wording shown, e.g. signup-2026-11"
    )
    at: datetime | None = Field(
        default=None,
        description="when it was given, with a UTC offset; from 2000 to a day ahead of now "
        "(default: when the lead receives it)",
    )
    ip: str | None = Field(
        default=None, description="the address the form was sent from (required for form)"
    )

    @field_validator("at", mode="before")
    @classmethod
    def _from_text(cls, value: object, info: ValidationInfo) -> object:
        return _edge_time_text(value) if _at_edge(info) else value

    @field_validator("at")
    @classmethod
    def _aware_and_plausible(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return value
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-24T10:00:00Z")
        return _plausible(value, "consent was given") if _at_edge(info) else value

    @field_validator("text")
    @classmethod
    def _plain_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return (
            _check_text(value, CONSENT_TEXT_MAX) if value is not None and _at_edge(info) else value
        )

    @field_validator("version")
    @classmethod
    def _version_slug(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (
            value is not None
            and _at_edge(info)
            and not re.fullmatch(CONSENT_VERSION_PATTERN, value)
        ):
            raise ValueError(
                "a consent version is 1 to 64 letters, digits, '.', '_', ':' or '-', "
                "e.g. signup-2026-11"
            )
        return value

    @field_validator("ip")
    @classmethod
    def _ip_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not _at_edge(info):
            return value
        try:
            return str(ipaddress.ip_address(value[:64]))
        except ValueError:
            raise ValueError(
                f"not an IP address: {value[:64]!r} (expected e.g. 203.0.113.7 or 2001:db8::7)"
            ) from None

    @model_validator(mode="after")
    def _evidence(self, info: ValidationInfo) -> Self:
        if not _at_edge(info):
            return self
        if self.text is None and self.version is None:
            raise ValueError("say what the person agreed to: 'text' or 'version' (or both)")
        if self.source == "form" and self.ip is None:
            raise ValueError("consent from a form needs 'ip': the address the form was sent from")
        return self

    @classmethod
    def edge_json_schema(cls, schema: dict[str, Any]) -> None:
        """Add the edge rules JSON Schema can state to ``schema`` (this model's)."""
        properties = schema["properties"]
        _constrain(
            properties["text"], "string", maxLength=CONSENT_TEXT_MAX, pattern=PLAIN_TEXT_PATTERN
        )
        _constrain(properties["version"], "string", pattern=CONSENT_VERSION_PATTERN)
        _constrain(properties["ip"], "string", maxLength=64)
        _constrain(properties["at"], "string", format="date-time")


class LeadProfile(_FromOutside, LaterFieldsOmitted):
    """Who the lead is. ``custom`` holds any extra field a marketer wants to match on.

    As an update (a ``profile`` signal), only the fields in ``sent_fields`` change: see
    ``merged``. From the edge, ``sent_fields`` is filled in with the fields sent."""

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
    campaign: str | None = Field(default=None, description="a slug, e.g. webinar-q4")
    timezone: str | None = Field(default=None, description="IANA zone, e.g. Europe/Berlin")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()./-]{4,40}$")
    address: str | None = Field(default=None, max_length=500, description="for direct mail")
    custom: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description=f"your own fields (at most {CUSTOM_KEYS_MAX} per lead); in an update, "
        "null removes one",
    )
    consent: ConsentGiven | None = Field(
        default=None,
        description="how and when the person agreed to be emailed: kept by the lead as a "
        "consent record (it is not a profile field)",
    )
    LATER_FIELDS = ("consent",)
    sent_fields: list[str] | None = Field(
        default=None,
        description="set by the service, never sent: the fields this update carries. Updates "
        "recorded before partial updates existed have none and replace every field.",
    )

    @model_validator(mode="before")
    @classmethod
    def _record_sent_fields(cls, data: Any, info: ValidationInfo) -> Any:
        if not _at_edge(info) or not isinstance(data, dict):
            return data
        if "sent_fields" in data:
            raise ValueError("sent_fields is set by the service from the fields you send")
        return {**data, "sent_fields": sorted(k for k in data if k != "lead_id")}

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern = EDGE_EMAIL_PATTERN if _at_edge(info) else _EMAIL_PATTERN
        if value is not None and not re.fullmatch(pattern, value):
            raise ValueError(
                f"not a valid email address: {value[:100]!r} (expected name@domain.tld)"
            )
        return value

    @field_validator(*TEXT_MAX)
    @classmethod
    def _bounded_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not _at_edge(info):
            return value
        assert info.field_name is not None
        return _check_text(value, TEXT_MAX[info.field_name])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not _at_edge(info):
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin, "
                "America/New_York or UTC"
            ) from None
        return value

    @field_validator("company_size", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        """JSON Schema's integers include 596.0: a whole number is taken, also strictly."""
        return int(value) if isinstance(value, float) and value.is_integer() else value

    @field_validator("company_size")
    @classmethod
    def _bounded_size(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and _at_edge(info) and value > COMPANY_SIZE_MAX:
            raise ValueError(f"at most {COMPANY_SIZE_MAX:,} employees")
        return value

    @field_validator("budget")
    @classmethod
    def _finite_budget(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _check_number(value) if value is not None and _at_edge(info) else value

    @field_validator("custom")
    @classmethod
    def _bounded_custom(
        cls, value: dict[str, str | int | float | bool | None], info: ValidationInfo
    ) -> dict[str, str | int | float | bool | None]:
        if not _at_edge(info):
            return value
        if len(value) > CUSTOM_KEYS_MAX:
            raise ValueError(f"{len(value)} custom fields; at most {CUSTOM_KEYS_MAX} per lead")
        for key, item in value.items():
            if not re.fullmatch(CUSTOM_KEY_PATTERN, key):
                raise ValueError(
                    f"custom field name {key[:64]!r}: use 1 to 64 letters, digits, '_' or '-' "
                    "(first not '-')"
                )
            try:
                if isinstance(item, str):
                    _check_text(item, CUSTOM_TEXT_MAX)
                elif isinstance(item, int | float) and not isinstance(item, bool):
                    _check_number(item)
            except ValueError as exc:
                raise ValueError(f"custom field {key!r}: {exc}") from None
        return value

    @classmethod
    def edge_json_schema(cls) -> dict[str, Any]:
        """What the HTTP API takes: the JSON Schema with the edge bounds in it."""
        schema = _edge_schema(cls)
        properties = schema["properties"]
        del properties["sent_fields"]  # set by the service, refused when sent
        text = set(TEXT_MAX) - {"email", "campaign", "timezone", "phone"}
        for name in text:
            _constrain(
                properties[name], "string", maxLength=TEXT_MAX[name], pattern=PLAIN_TEXT_PATTERN
            )
        _constrain(properties["email"], "string", maxLength=254, pattern=EDGE_EMAIL_PATTERN)
        _constrain(properties["phone"], "string", maxLength=TEXT_MAX["phone"])
        _constrain(properties["timezone"], "string", enum=sorted(zoneinfo.available_timezones()))
        _constrain(properties["company_size"], "integer", maximum=COMPANY_SIZE_MAX)
        _constrain(properties["budget"], "number", maximum=AMOUNT_MAX)
        ConsentGiven.edge_json_schema(schema["$defs"]["ConsentGiven"])
        number = {"minimum": -AMOUNT_MAX, "maximum": AMOUNT_MAX}
        properties["custom"] |= {
            "maxProperties": CUSTOM_KEYS_MAX,
            "propertyNames": {"pattern": CUSTOM_KEY_PATTERN},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": CUSTOM_TEXT_MAX, "pattern": PLAIN_TEXT_PATTERN},
                    {"type": "integer", **number},
                    {"type": "number", **number},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        }
        return schema

    def merged(self, update: LeadProfile) -> LeadProfile:
        """This profile with the update applied.

        An update with ``sent_fields`` (everything from the edge) changes only those fields;
        a field sent as null is cleared. Custom fields merge one by one: a null value removes
        one; a new one is added while the lead has fewer than ``CUSTOM_KEYS_MAX`` and ignored
        beyond that (see ``custom_overflow``), so a profile never outgrows
        ``PROFILE_BYTES_MAX`` however many updates it gets.

        An update without ``sent_fields`` (recorded in histories before partial updates
        existed) is applied as it always was: every field it holds replaces the lead's, and
        custom fields merge without a limit. Replays of those histories depend on it.
        """
        if update.sent_fields is None:
            changes = update.model_dump(
                exclude_unset=True, exclude={"lead_id", "custom", "sent_fields", "consent"}
            )
            custom = {**self.custom, **update.custom}
            return self.model_copy(update={**changes, "custom": custom})
        sent = set(update.sent_fields)
        changes = {name: getattr(update, name) for name in PROFILE_FIELDS if name in sent}
        custom = self._merged_custom(update.custom) if "custom" in sent else dict(self.custom)
        return self.model_copy(
            update={**changes, "custom": custom, "sent_fields": None, "consent": None}
        )

    def custom_overflow(self, update: LeadProfile) -> list[str]:
        """The custom fields ``merged`` leaves out of this lead (it has CUSTOM_KEYS_MAX)."""
        if update.sent_fields is None or "custom" not in update.sent_fields:
            return []
        kept = self._merged_custom(update.custom)
        return [k for k, v in update.custom.items() if v is not None and k not in kept]

    def _merged_custom(
        self, changes: dict[str, str | int | float | bool | None]
    ) -> dict[str, str | int | float | bool | None]:
        custom = dict(self.custom)
        for key, value in changes.items():
            if value is None:
                custom.pop(key, None)
            elif key in custom or len(custom) < CUSTOM_KEYS_MAX:
                custom[key] = value
        return custom

    def fields(self) -> dict[str, Any]:
        """Flat view for conditions: profile fields plus ``custom.<name>``."""
        flat: dict[str, Any] = {name: getattr(self, name) for name in PROFILE_FIELDS}
        flat.update({f"custom.{k}": v for k, v in self.custom.items()})
        return flat

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email or self.lead_id


class LeadEvent(_FromOutside):
    """One behaviour: a page view, a download, an email click, a call request…"""

    lead_id: str = Field(pattern=LEAD_ID_PATTERN)
    type: str = Field(pattern=EVENT_TYPE_PATTERN)
    at: datetime | None = Field(
        default=None,
        description="when it happened, with a UTC offset; from 2000 to a day ahead of now",
    )
    campaign: str | None = Field(default=None, description="a slug, e.g. webinar-q4")
    url: str | None = None
    props: dict[str, Any] = Field(
        default_factory=dict,
        description=f"anything else: at most {PROPS_DEPTH_MAX} levels deep, "
        f"{PROPS_BYTES_MAX // 1024} KiB as JSON",
    )
    event_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("at", mode="before")
    @classmethod
    def _from_text(cls, value: object, info: ValidationInfo) -> object:
        """JSON has no date type: at the edge a date is RFC 3339 text (the schema's format
        date-time), parsed here so that strict validation (JSON items) takes it while refusing
        a number. Recorded payloads are read as they always were."""
        return _edge_time_text(value) if _at_edge(info) else value

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-24T10:00:00Z")
        return value

    @field_validator("at")
    @classmethod
    def _plausible_time(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """A lead does date arithmetic on ``at`` (decay, windows, timers): year 9999, or an
        offset that pushes it past the datetime range, would fail every workflow task."""
        return (
            _plausible(value, "the event happened")
            if value is not None and _at_edge(info)
            else value
        )

    @field_validator("url")
    @classmethod
    def _bounded_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_text(value, URL_MAX) if value is not None and _at_edge(info) else value

    @field_validator("event_id")
    @classmethod
    def _plain_event_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_text(value, 200) if value is not None and _at_edge(info) else value

    @field_validator("props")
    @classmethod
    def _bounded_props(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Deep nesting cannot be serialized (past ~250 levels) or deserialized by the worker
        (past ~200): the signal would be dropped. Bounded well inside both."""
        if not _at_edge(info):
            return value
        problem = _props_problem(value)
        if problem:
            raise ValueError(problem)
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > PROPS_BYTES_MAX:
            raise ValueError(f"{size:,} bytes as JSON; at most {PROPS_BYTES_MAX:,}")
        return value

    @classmethod
    def edge_json_schema(cls) -> dict[str, Any]:
        """What the HTTP API takes: the JSON Schema with the edge bounds in it (``at``'s
        range and ``props``' depth and size are in their descriptions: no schema says them)."""
        schema = _edge_schema(cls)
        properties = schema["properties"]
        _constrain(properties["url"], "string", maxLength=URL_MAX, pattern=PLAIN_TEXT_PATTERN)
        _constrain(properties["event_id"], "string", pattern=PLAIN_TEXT_PATTERN)
        return schema

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
