"""A local stand-in for the part of the Salesforce REST API a lead pusher uses, for tests and demos.

The engine hands sales-ready leads to a CRM and forwards their later activity. Against
Salesforce that is plain REST (API version 60.0); this module serves the same subset on
loopback and answers the way Salesforce answers, status codes and error bodies included, so a
client written against the stand-in works against a real org:

* OAuth 2.0 client credentials: ``POST /services/oauth2/token`` (form-encoded ``grant_type``,
  ``client_id``, ``client_secret``; HTTP Basic client authentication works too).
* ``GET /services/data/`` (the versions, no auth), ``GET /services/data/vXX.X/`` and
  ``.../sobjects`` (global describe), ``.../sobjects/Lead`` and ``.../sobjects/Lead/describe``.
* Records of ``Lead`` and ``Task``: ``POST .../sobjects/<Type>`` (create, 201),
  ``GET``/``PATCH``/``DELETE .../sobjects/<Type>/<Id>`` (15- or 18-character ids, as Salesforce
  accepts both; deleting a Lead deletes its Tasks, as Salesforce deletes a record's activities
  with it) and the external-id resource ``.../sobjects/<Type>/<ExtField>/<value>``, whose
  ``PATCH`` is an upsert: 201 ``{"id", "success", "errors", "created": true}`` when it created
  the record; when it updated one, 200 with ``"created": false`` from API version 46.0 on (so in
  v60.0) and 204 without a body in versions up to 45.0, as Salesforce documents. A retried push
  therefore never duplicates a lead or an activity.
* Errors as Salesforce shapes them: a JSON array of ``{"message", "errorCode", "fields"?}``,
  ``Content-Type: application/json;charset=UTF-8``; 401 ``INVALID_SESSION_ID``, 404
  ``NOT_FOUND``, 405 ``METHOD_NOT_ALLOWED``, 400 ``REQUIRED_FIELD_MISSING``, ``INVALID_FIELD``,
  ``INVALID_EMAIL_ADDRESS``, ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``, ``STRING_TOO_LONG``,
  ``MALFORMED_ID``, ``FIELD_INTEGRITY_EXCEPTION``, ``DUPLICATE_VALUE``,
  ``CANNOT_UPDATE_CONVERTED_LEAD``, ``INVALID_FIELD_FOR_INSERT_UPDATE``, ``JSON_PARSER_ERROR``.
  Every data-API answer carries ``Sforce-Limit-Info: api-usage=N/15000``.

The org it models: Lead with the standard fields FirstName, LastName (required), Company
(required), Title, Email, Phone, LeadSource, Rating and Status (restricted picklists; Status
defaults to "Open - Not Contacted"), OwnerId, Description, plus three custom fields: the external
id ``Nurture_Lead_Id__c`` (unique, case-insensitive, the Salesforce default),
``Nurture_Handoff__c`` (a number: which hand-off of the lead the record is about) and
``Status_Reason__c``, where a rep writes why a lead was rejected. Task with WhoId (a Lead),
Subject (required in this org), Description, Status, Priority, Type, ActivityDate, OwnerId and
the external id ``Nurture_Event_Id__c``. Field names are case-insensitive, like Salesforce's;
``""`` is stored as null, like Salesforce does. Only JSON bodies are served (Salesforce also
takes XML).

Outbound notifications - how the CRM tells the engine that a rep contacted, rejected or
converted a lead. A real org would send an Outbound Message (SOAP, from a workflow rule or
flow), publish a Platform Event / Change Data Capture event, or call out over HTTP from a
record-triggered Flow. The stand-in's equivalent is one signed JSON POST per status change:
:meth:`SalesforceStandIn.rep_changes_status` updates the lead as the rep would in the UI and
posts ``{"NotificationId", "sobject", "id", "Nurture_Lead_Id__c", "Nurture_Handoff__c",
"Status", "Reason", "OwnerId", "LastModifiedDate"}`` to the URL given to
:meth:`~SalesforceStandIn.set_outbound`, with ``X-Standin-Timestamp: <unix seconds>`` and
``X-Standin-Signature: sha256=<hex HMAC-SHA256 of timestamp + "." + raw body under the shared
secret>`` (signed again at each attempt, so a receiver can refuse old posts) and an
``X-Standin-Notification-Id`` that stays the same on redelivery, as does ``NotificationId``.
Like Outbound Messages, an unacknowledged notification (no connection or a non-2xx answer)
stays pending until :meth:`~SalesforceStandIn.redeliver`.

Test controls, none of them Salesforce: fault injection (:meth:`~SalesforceStandIn.fail_next`,
:meth:`~SalesforceStandIn.delay_after_commit`), an outage (:meth:`~SalesforceStandIn.down` /
:meth:`~SalesforceStandIn.up`), session expiry, and inspection of records and requests. Over
HTTP, for demos: ``POST /_standin/leads/<id or external id>/status`` with
``{"Status", "Reason", "OwnerId"}``; open in tests, and given a ``control_token`` (the command
line always gives one) only with it, in ``X-Standin-Token`` or ``?token=``.

Standard library only; runs inside a sync CLI, an asyncio test, or on its own::

    python -m nurture.standins.crm_standin --port 3031 [--outbound-url URL --outbound-secret S]
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import http.client
import json
import re
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from nurture.standins import loopback, standin_cli
from nurture.standins.loopback import CONTROL_TOKEN_HEADER

__all__ = [
    "API_VERSION",
    "CONTROL_TOKEN_HEADER",
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "LEAD_EXTERNAL_ID",
    "LEAD_STATUSES",
    "NOTIFICATION_ID_HEADER",
    "RATINGS",
    "SIGNATURE_HEADER",
    "TASK_EXTERNAL_ID",
    "TASK_STATUSES",
    "TIMESTAMP_HEADER",
    "OutboundDelivery",
    "OutboundDeliveryError",
    "RecordedRequest",
    "SalesforceStandIn",
    "sign_notification",
    "to_18_char_id",
]

API_VERSION = "60.0"
"""The newest API version the stand-in serves (Spring '24); 20.0 is the oldest."""
_OLDEST_MAJOR = 20
_UPSERT_200_SINCE = 46.0  # upsert answers 200 + body for an update from this version on

DEFAULT_ACCESS_TOKEN = "00D-standin-token"
DEFAULT_CLIENT_ID = "standin-client-id"
DEFAULT_CLIENT_SECRET = "standin-client-secret"
DAILY_API_LIMIT = 15_000

LEAD_EXTERNAL_ID = "Nurture_Lead_Id__c"
TASK_EXTERNAL_ID = "Nurture_Event_Id__c"
LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
CONVERTED_STATUS = "Closed - Converted"
RATINGS = ("Hot", "Warm", "Cold")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_PRIORITIES = ("High", "Normal", "Low")
TASK_TYPES = ("Call", "Email", "Meeting", "Other")
TASK_SUBJECTS = ("Call", "Send Letter", "Send Quote", "Other")

SIGNATURE_HEADER = "X-Standin-Signature"
NOTIFICATION_ID_HEADER = "X-Standin-Notification-Id"
TIMESTAMP_HEADER = "X-Standin-Timestamp"
HANDOFF_FIELD = "Nurture_Handoff__c"

_TOKEN_PATH = "/services/oauth2/token"
_JSON_TYPE = "application/json;charset=UTF-8"
_SESSION_INVALID = "Session expired or invalid"
_RESOURCE_MISSING = "The requested resource does not exist"
_CONVERTED = "cannot reference converted lead"

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_DATA_RE = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/.*)?$")
_EMAIL_RE = re.compile(
    r"^[^\s@<>()\[\],;:\"\\]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


# --------------------------------------------------------------------------------------------
# Salesforce ids
# --------------------------------------------------------------------------------------------


def _checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitive.

    Each suffix character encodes, for one 5-character chunk, which positions are upper case.
    """
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        flags = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX_ALPHABET[flags]
    return suffix


def to_18_char_id(value: str) -> str | None:
    """The canonical 18-character form of a Salesforce id, or None when it is malformed.

    A 15-character id is case-sensitive; an 18-character one is not: its suffix says which
    letters are upper case, so ``00q...`` in any case resolves to the same record.
    """
    if not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + _checksum(value)
    chunks = []
    for i, flag_char in enumerate(value[15:].upper()):
        flags = _SUFFIX_ALPHABET.find(flag_char)
        if flags < 0:
            return None
        chunk = ""
        for j, ch in enumerate(value[i * 5 : i * 5 + 5]):
            upper = bool(flags & (1 << j))
            if ch.isdigit():
                if upper:
                    return None
                chunk += ch
            else:
                chunk += ch.upper() if upper else ch.lower()
        chunks.append(chunk)
    id15 = "".join(chunks)
    return id15 + _checksum(id15)


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    return digits.rjust(width, "0")


class _IdSequence:
    """Ids of one key prefix, e.g. ``00Q`` for Lead: prefix, pod, then a base-62 counter."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._next = secrets.randbelow(62**6)

    def new(self) -> str:
        self._next += 1
        return to_18_char_id(f"{self.prefix}8d0{_base62(self._next, 9)}") or ""


# --------------------------------------------------------------------------------------------
# The org's schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    label: str
    type: str
    """Salesforce field type: id, string, email, phone, picklist, combobox, textarea,
    reference, boolean, date, datetime, double (stored as its text)."""
    length: int = 0
    required: bool = False
    """Non-nillable with no default: missing on create, or set to null, is
    REQUIRED_FIELD_MISSING."""
    writable: bool = True
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: str | None = None
    external_id: bool = False
    reference_to: tuple[str, ...] = ()
    custom: bool = False
    system: bool = False
    """Set by the platform on every record (Id, audit fields): never null."""

    def describe(self) -> dict[str, Any]:
        nillable = not (
            self.required or self.system or self.default is not None or self.type == "boolean"
        )
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "length": self.length,
            "custom": self.custom,
            "nillable": nillable,
            "createable": self.writable,
            "updateable": self.writable,
            "defaultedOnCreate": self.system or self.default is not None,
            "externalId": self.external_id,
            "unique": self.external_id,
            "caseSensitive": False,
            "idLookup": self.external_id or self.name == "Id",
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": value == self.default,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in self.picklist
            ],
            "referenceTo": list(self.reference_to),
            "relationshipName": self.name[:-2] if self.type == "reference" else None,
        }


def _audit_fields() -> tuple[_Field, ...]:
    return (
        _Field("CreatedDate", "Created Date", "datetime", writable=False, system=True),
        _Field(
            "CreatedById",
            "Created By ID",
            "reference",
            18,
            writable=False,
            system=True,
            reference_to=("User",),
        ),
        _Field("LastModifiedDate", "Last Modified Date", "datetime", writable=False, system=True),
        _Field(
            "LastModifiedById",
            "Last Modified By ID",
            "reference",
            18,
            writable=False,
            system=True,
            reference_to=("User",),
        ),
        _Field("SystemModstamp", "System Modstamp", "datetime", writable=False, system=True),
    )


@dataclass(frozen=True)
class _SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    external_id: str
    fields: tuple[_Field, ...]
    by_lower: dict[str, _Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_lower", {f.name.lower(): f for f in self.fields})

    def lookup(self, name: str) -> _Field | None:
        """The field of this name; Salesforce field names are case-insensitive."""
        return self.by_lower.get(name.lower())

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def summary(self, version: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "retrieveable": True,
            "urls": self.urls(version),
        }

    def describe(self, version: str) -> dict[str, Any]:
        return {**self.summary(version), "fields": [f.describe() for f in self.fields]}


# default="": defaulted on create, to the integration user (the stand-in's user_id).
_OWNER = _Field("OwnerId", "Owner ID", "reference", 18, default="", reference_to=("Group", "User"))

LEAD = _SObject(
    name="Lead",
    label="Lead",
    label_plural="Leads",
    key_prefix="00Q",
    external_id=LEAD_EXTERNAL_ID,
    fields=(
        _Field("Id", "Lead ID", "id", 18, writable=False, system=True),
        _Field("IsDeleted", "Deleted", "boolean", writable=False),
        _Field("LastName", "Last Name", "string", 80, required=True),
        _Field("FirstName", "First Name", "string", 40),
        _Field("Name", "Full Name", "string", 121, writable=False),
        _Field("Title", "Title", "string", 128),
        _Field("Company", "Company", "string", 255, required=True),
        _Field("Phone", "Phone", "phone", 40),
        _Field("Email", "Email", "email", 80),
        _Field("Description", "Description", "textarea", 32000),
        _Field("LeadSource", "Lead Source", "picklist", 255, picklist=LEAD_SOURCES),
        _Field(
            "Status",
            "Lead Status",
            "picklist",
            255,
            picklist=LEAD_STATUSES,
            restricted=True,
            default=LEAD_STATUSES[0],
        ),
        _Field("Rating", "Rating", "picklist", 255, picklist=RATINGS, restricted=True),
        _OWNER,
        _Field("IsConverted", "Converted", "boolean", writable=False),
        _Field("ConvertedDate", "Converted Date", "date", writable=False),
        *_audit_fields(),
        _Field(LEAD_EXTERNAL_ID, "Nurture Lead Id", "string", 255, external_id=True, custom=True),
        _Field(HANDOFF_FIELD, "Nurture Handoff", "double", custom=True),
        _Field("Status_Reason__c", "Status Reason", "string", 255, custom=True),
    ),
)

TASK = _SObject(
    name="Task",
    label="Task",
    label_plural="Tasks",
    key_prefix="00T",
    external_id=TASK_EXTERNAL_ID,
    fields=(
        _Field("Id", "Activity ID", "id", 18, writable=False, system=True),
        _Field("IsDeleted", "Deleted", "boolean", writable=False),
        _Field("WhoId", "Name ID", "reference", 18, reference_to=("Contact", "Lead")),
        # Subject is a combobox Salesforce lets be empty; this org's integration requires it.
        _Field("Subject", "Subject", "combobox", 255, required=True, picklist=TASK_SUBJECTS),
        _Field("ActivityDate", "Due Date Only", "date"),
        _Field(
            "Status",
            "Status",
            "picklist",
            255,
            picklist=TASK_STATUSES,
            restricted=True,
            default=TASK_STATUSES[0],
        ),
        _Field(
            "Priority",
            "Priority",
            "picklist",
            255,
            picklist=TASK_PRIORITIES,
            restricted=True,
            default="Normal",
        ),
        _Field("Type", "Type", "picklist", 255, picklist=TASK_TYPES),
        _OWNER,
        _Field("Description", "Comments", "textarea", 32000),
        _Field("IsClosed", "Closed", "boolean", writable=False),
        *_audit_fields(),
        _Field(TASK_EXTERNAL_ID, "Nurture Event Id", "string", 255, external_id=True, custom=True),
    ),
)

_SOBJECTS: dict[str, _SObject] = {s.name.lower(): s for s in (LEAD, TASK)}
_OWNER_PREFIXES = ("005", "00G")  # User, Group (queue)


# --------------------------------------------------------------------------------------------
# Errors and request bodies
# --------------------------------------------------------------------------------------------


def _error(message: str, code: str, fields: list[str] | None = None) -> dict[str, Any]:
    """One Salesforce error object; ``fields`` is present only for record-level errors."""
    error: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        error["fields"] = fields
    return error


class _ApiError(Exception):
    """An answer other than success: the status and the Salesforce error array."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors


def _not_found(message: str = _RESOURCE_MISSING) -> _ApiError:
    return _ApiError(HTTPStatus.NOT_FOUND, [_error(message, "NOT_FOUND")])


def _bad(message: str, code: str, fields: list[str] | None = None) -> _ApiError:
    return _ApiError(HTTPStatus.BAD_REQUEST, [_error(message, code, fields)])


def _parser_error(expected: str, value: object) -> _ApiError:
    if isinstance(value, dict):
        kind, text = "START_OBJECT", "{"
    elif isinstance(value, list):
        kind, text = "START_ARRAY", "["
    else:
        kind, text = "VALUE_STRING", str(value)
    return _bad(
        f"Cannot deserialize instance of {expected} from {kind} value {text} or request may be "
        "missing a required field",
        "JSON_PARSER_ERROR",
    )


def _sf_datetime(moment: datetime) -> str:
    """Salesforce's datetime format: ``2024-01-15T10:30:00.000+0000`` (always UTC)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


_JSON_TYPES = {"date": "date", "double": "double"}


def _number(text: str | None) -> int | float | None:
    """A number field's stored text as JSON gives it back (``2``, not ``"2"``)."""
    if text is None:
        return None
    number = float(text)
    return int(number) if number.is_integer() else number


def _coerce(f: _Field, value: object) -> str | None:
    """A JSON value as Salesforce deserialises it into the field: numbers and booleans become
    text, ``""`` becomes null, objects and arrays are parser errors."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise _parser_error(_JSON_TYPES.get(f.type, "string"), value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = json.dumps(value)
    else:
        text = str(value)
    if text == "":
        return None
    if f.type == "double":
        try:
            float(text)
        except ValueError:
            raise _parser_error("double", text) from None
    if f.type == "date":
        try:
            if len(text) != 10:
                raise ValueError(text)
            date.fromisoformat(text)
        except ValueError:
            raise _parser_error("date", text) from None
    return text


def _check_value(f: _Field, value: str) -> dict[str, Any] | None:
    """The error a non-null value earns in ``f``, if any (state-free checks only).

    Whether a WhoId names an existing, unconverted lead is checked later, under the lock.
    """
    if f.type == "reference":
        reference = to_18_char_id(value)
        wrong_type = f"{f.label}: id value of incorrect type: {value}"
        if reference is None and f.name == "OwnerId":
            return _error(wrong_type, "MALFORMED_ID", [f.name])
        if reference is None or (f.name == "OwnerId" and not reference.startswith(_OWNER_PREFIXES)):
            return _error(wrong_type, "FIELD_INTEGRITY_EXCEPTION", [f.name])
        return None
    if f.length and len(value) > f.length:
        return _error(
            f"{f.label}: data value too large: {value} (max length={f.length})",
            "STRING_TOO_LONG",
            [f.name],
        )
    if f.type == "email" and not _EMAIL_RE.match(value):
        return _error(
            f"{f.label}: invalid email address: {value}", "INVALID_EMAIL_ADDRESS", [f.name]
        )
    if f.restricted and value not in f.picklist:
        return _error(
            f"{f.label}: bad value for restricted picklist field: {value}",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            [f.name],
        )
    return None


def _changes(sobject: _SObject, body: object, upsert_field: _Field | None) -> dict[str, Any]:
    """Validate a create/update/upsert body; return canonical field name -> value.

    Raises :class:`_ApiError` with Salesforce's error for the first class of problem found:
    an unknown field, read-only fields, a value that cannot be deserialised, then every
    field-level error together.
    """
    if not isinstance(body, dict):
        raise _parser_error(sobject.name, body)
    resolved: list[tuple[_Field, object]] = []
    for key, value in body.items():
        if key == "attributes":
            continue  # Salesforce accepts (and ignores) the record's "attributes" block
        f = sobject.lookup(str(key))
        if f is None:
            raise _bad(f"No such column '{key}' on sobject of type {sobject.name}", "INVALID_FIELD")
        resolved.append((f, value))
    read_only = [f.name for f, _ in resolved if not f.writable]
    if read_only:
        raise _bad(
            f"Unable to create/update fields: {', '.join(read_only)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.",
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            read_only,
        )
    if upsert_field is not None:
        # Salesforce: "Do not specify Id or an external ID field in the request body or an
        # error is generated." The wording of that error here is the stand-in's.
        named = [f.name for f, _ in resolved if f is upsert_field]
        if named:
            raise _bad(
                f"{upsert_field.name}: the external ID field of an upsert must not be in the "
                "request body",
                "INVALID_FIELD",
                named,
            )
    changes: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for f, value in resolved:
        coerced = _coerce(f, value)
        if coerced is not None:
            problem = _check_value(f, coerced)
            if problem is not None:
                errors.append(problem)
                continue
            if f.name == "OwnerId":
                coerced = to_18_char_id(coerced) or coerced
        changes[f.name] = coerced
    if errors:
        raise _ApiError(HTTPStatus.BAD_REQUEST, errors)
    return changes


def _required_missing(sobject: _SObject, record: dict[str, Any]) -> _ApiError | None:
    missing = [f.name for f in sobject.fields if f.required and record.get(f.name) is None]
    if not missing:
        return None
    return _bad(
        f"Required fields are missing: [{', '.join(missing)}]", "REQUIRED_FIELD_MISSING", missing
    )


def _version_label(version: str) -> str:
    """The release a REST API version shipped in: 60.0 is Spring '24, 59.0 Winter '24."""
    offset = int(float(version)) - 60
    season = ("Spring", "Summer", "Winter")[offset % 3]
    year = 24 + offset // 3 + (1 if season == "Winter" else 0)
    return f"{season} '{year:02d}"


_VERSIONS = tuple(f"{major}.0" for major in range(_OLDEST_MAJOR, int(float(API_VERSION)) + 1))


# --------------------------------------------------------------------------------------------
# Outbound notifications
# --------------------------------------------------------------------------------------------


def sign_notification(payload: bytes, secret: str, timestamp: str) -> str:
    """The ``X-Standin-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of
    ``timestamp + "." + body`` (``timestamp``: the ``X-Standin-Timestamp``, unix seconds)."""
    signed = timestamp.encode("ascii") + b"." + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class OutboundDeliveryError(OSError):
    """The outbound URL could not be reached; the notification stays pending."""


@dataclass(frozen=True)
class OutboundDelivery:
    """One attempt to post a notification to the outbound URL."""

    notification_id: str
    """The ``X-Standin-Notification-Id``: the same on every attempt for one status change."""
    url: str
    payload: bytes
    """The exact body; the signature covers these bytes."""
    signature: str
    """The ``X-Standin-Signature`` header value (``sha256=<hex>``)."""
    timestamp: str
    """The ``X-Standin-Timestamp`` header value the signature covers."""
    status: int | None
    """The receiver's status; None when it could not be reached."""
    response_body: bytes
    error: str | None
    attempt: int

    @property
    def notification(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Pending:
    notification_id: str
    payload: bytes
    attempts: int = 0


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


class RecordedRequest(NamedTuple):
    """One request the stand-in answered (or refused with a fault)."""

    method: str
    path: str
    """The URL path, without the query string."""
    status: int


class _Server(loopback.StandInServer):
    standin: SalesforceStandIn
    quiet = (OSError,)  # clients that hang up, and the connections down() cuts


class _Handler(loopback.StandInHandler):
    server_version = "SalesforceStandIn"
    server: _Server
    _limit_info: str | None = None

    # -- plumbing ------------------------------------------------------------------------

    def _send(
        self, status: int, payload: object = None, headers: dict[str, str] | None = None
    ) -> None:
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.server.standin._record_request(self.command, urlsplit(self.path).path, status)
        sent: list[tuple[str, str]] = [("Content-Type", _JSON_TYPE)] if body else []
        if status != HTTPStatus.NO_CONTENT:
            sent.append(("Content-Length", str(len(body))))
        if self._limit_info is not None:
            sent.append(("Sforce-Limit-Info", self._limit_info))
        self._respond(status, [*sent, *(headers or {}).items()], body)

    def _method(self) -> str:
        return "GET" if self.command == "HEAD" else self.command

    def _allow(self, *methods: str) -> str:
        """The request's method if the resource takes it; else Salesforce's 405."""
        method = self._method()
        if method not in methods:
            allowed = ",".join(("HEAD", *methods) if "GET" in methods else methods)
            raise _ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                [
                    _error(
                        f"HTTP Method '{self.command}' not allowed. Allowed are {allowed}",
                        "METHOD_NOT_ALLOWED",
                    )
                ],
            )
        return method

    def _json_body(self, raw: bytes) -> object:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type and content_type != "application/json":
            raise _ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                [
                    _error(
                        "Content-Type header specified in HTTP request is not supported: "
                        f"{content_type}",
                        "UNSUPPORTED_MEDIA_TYPE",
                    )
                ],
            )
        if not raw.strip():
            raise _bad(
                "No content to map due to end-of-input at [line:1, column:0]", "JSON_PARSER_ERROR"
            )
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad("Invalid UTF-8 in request body", "JSON_PARSER_ERROR") from None
        except json.JSONDecodeError as exc:
            raise _bad(
                f"{exc.msg} at [line:{exc.lineno}, column:{exc.colno}]", "JSON_PARSER_ERROR"
            ) from None

    def _authorized(self) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        # Salesforce also takes the older "OAuth <token>" scheme.
        return scheme.lower() in ("bearer", "oauth") and self.server.standin._token_valid(
            token.strip()
        )

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._limit_info = None
        raw, _ = self._read_body()
        split = urlsplit(self.path)
        path = split.path
        try:
            if path == _TOKEN_PATH:
                self._token(raw)
            elif path in ("/services/data", "/services/data/"):
                self._allow("GET")
                self._send(
                    HTTPStatus.OK,
                    [
                        {
                            "label": _version_label(v),
                            "url": f"/services/data/v{v}",
                            "version": v,
                        }
                        for v in _VERSIONS
                    ],
                )
            elif path.startswith("/_standin/"):
                self._check_control_token(split.query)
                self._control(path, raw)
            else:
                match = _DATA_RE.match(path)
                if match is None:
                    raise _not_found()
                self._data(match.group("version"), match.group("rest") or "", split.query, raw)
        except _ApiError as exc:
            self._send(exc.status, exc.errors)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    # -- OAuth 2.0 -----------------------------------------------------------------------

    def _oauth_error(self, error: str, description: str) -> None:
        self._send(HTTPStatus.BAD_REQUEST, {"error": error, "error_description": description})

    def _token(self, raw: bytes) -> None:
        standin = self.server.standin
        if self.command != "POST":
            self._oauth_error("invalid_request", "must use HTTP POST")
            return
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)

        def first(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        if first("grant_type") != "client_credentials":
            self._oauth_error("unsupported_grant_type", "grant type not supported")
            return
        client_id, client_secret = first("client_id"), first("client_secret")
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic" and client_id is None:
            try:
                decoded = base64.b64decode(encoded.strip()).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, client_secret = unquote(basic_id), unquote(basic_secret)
        if client_id != standin.client_id:
            self._oauth_error("invalid_client_id", "client identifier invalid")
            return
        if client_secret is None or not hmac.compare_digest(
            client_secret.encode("utf-8"), standin.client_secret.encode("utf-8")
        ):
            self._oauth_error("invalid_client", "invalid client credentials")
            return
        self._send(
            HTTPStatus.OK, standin._issue_token(), {"Cache-Control": "no-cache,must-revalidate"}
        )

    # -- /services/data/vXX.X/... --------------------------------------------------------

    def _data(self, version: str, rest: str, query: str, raw: bytes) -> None:
        standin = self.server.standin
        if version not in _VERSIONS:
            raise _not_found()
        if not self._authorized():
            raise _ApiError(
                HTTPStatus.UNAUTHORIZED, [_error(_SESSION_INVALID, "INVALID_SESSION_ID")]
            )
        self._limit_info = standin._count_api_call()
        fault = standin._take_fault()
        if fault is not None:
            raise fault
        trimmed = rest.strip("/")
        segments = [unquote(s) for s in trimmed.split("/")] if trimmed else []
        if not segments:
            self._allow("GET")
            self._send(HTTPStatus.OK, {"sobjects": f"/services/data/v{version}/sobjects"})
            return
        if segments[0] != "sobjects":
            raise _not_found()
        if len(segments) == 1:
            self._allow("GET")
            self._send(
                HTTPStatus.OK,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [s.summary(version) for s in _SOBJECTS.values()],
                },
            )
            return
        sobject = _SOBJECTS.get(segments[1].lower())
        if sobject is None:
            raise _not_found()
        if len(segments) == 2:
            if self._allow("GET", "POST") == "GET":
                self._send(
                    HTTPStatus.OK, {"objectDescribe": sobject.summary(version), "recentItems": []}
                )
            else:
                self._create(sobject, raw)
        elif len(segments) == 3 and segments[2] == "describe":
            self._allow("GET")
            self._send(HTTPStatus.OK, sobject.describe(version))
        elif len(segments) == 3 and segments[2] == "Id" and self.command == "POST":
            if float(version) < 37.0:
                raise _not_found()
            self._create(sobject, raw)  # "Id as the external ID, with a null value"
        elif len(segments) == 3:
            self._by_id(sobject, version, segments[2], query, raw)
        elif len(segments) == 4:
            self._by_external_id(sobject, version, segments[2], segments[3], query, raw)
        else:
            raise _not_found()

    def _send_committed(self, status: int, payload: object = None) -> None:
        """Answer a write that is already committed, honouring delay_after_commit."""
        standin = self.server.standin
        delay = standin._take_delay()
        if delay is not None and standin._hold(delay):
            self.close_connection = True  # stopping: the answer is lost, the write is not
            return
        self._send(status, payload)

    def _fields_param(self, sobject: _SObject, query: str) -> list[str] | None:
        values = parse_qs(query).get("fields")
        if not values:
            return None
        names: list[str] = []
        for name in (n.strip() for n in values[-1].split(",") if n.strip()):
            f = sobject.lookup(name)
            if f is None:
                raise _bad(
                    f"No such column '{name}' on entity '{sobject.name}'. If you are attempting "
                    "to use a custom field, be sure to append the '__c' after the custom field "
                    "name. Please reference your WSDL or the describe call for the appropriate "
                    "names.",
                    "INVALID_FIELD",
                )
            names.append(f.name)
        return names

    def _create(self, sobject: _SObject, raw: bytes) -> None:
        changes = _changes(sobject, self._json_body(raw), None)
        record_id = self.server.standin._create(sobject, changes)
        self._send_committed(HTTPStatus.CREATED, {"id": record_id, "success": True, "errors": []})

    def _by_id(self, sobject: _SObject, version: str, raw_id: str, query: str, raw: bytes) -> None:
        standin = self.server.standin
        method = self._allow("GET", "PATCH", "DELETE")
        record_id = to_18_char_id(raw_id)
        if method == "GET":
            fields = self._fields_param(sobject, query)
            record = standin._read(sobject, record_id)
            self._send(HTTPStatus.OK, _record_json(sobject, record, version, fields))
        elif method == "PATCH":
            if record_id is None or not record_id.startswith(sobject.key_prefix):
                raise _bad(
                    f"{sobject.fields[0].label}: id value of incorrect type: {raw_id}",
                    "MALFORMED_ID",
                    ["Id"],
                )
            changes = _changes(sobject, self._json_body(raw), None)
            standin._update(sobject, record_id, changes)
            self._send_committed(HTTPStatus.NO_CONTENT)
        else:
            standin._delete(sobject, record_id)
            self._send_committed(HTTPStatus.NO_CONTENT)

    def _by_external_id(
        self, sobject: _SObject, version: str, field_name: str, value: str, query: str, raw: bytes
    ) -> None:
        standin = self.server.standin
        method = self._allow("GET", "PATCH", "DELETE")
        f = sobject.lookup(field_name)
        if f is None or not f.external_id:
            raise _not_found()
        if method == "GET":
            fields = self._fields_param(sobject, query)
            record = standin._read(sobject, standin._external_to_id(sobject, value))
            self._send(HTTPStatus.OK, _record_json(sobject, record, version, fields))
        elif method == "DELETE":
            standin._delete(sobject, standin._external_to_id(sobject, value))
            self._send_committed(HTTPStatus.NO_CONTENT)
        else:
            changes = _changes(sobject, self._json_body(raw), f)
            record_id, created = standin._upsert(sobject, f, value, changes)
            with_created = float(version) >= _UPSERT_200_SINCE
            result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
            if with_created:
                result["created"] = created
            if created:
                self._send_committed(HTTPStatus.CREATED, result)
            elif with_created:
                self._send_committed(HTTPStatus.OK, result)
            else:
                self._send_committed(HTTPStatus.NO_CONTENT)

    # -- POST /_standin/leads/<key>/status (demo control, not Salesforce) ----------------

    def _check_control_token(self, query: str) -> None:
        """Without its control token (when it has one) the stand-in signs nothing for a
        caller: any local process could otherwise have it post status changes to the engine."""
        if not self._control_token_ok(query):
            raise _ApiError(
                HTTPStatus.UNAUTHORIZED,
                [
                    _error(
                        f"this stand-in control needs its token: the {CONTROL_TOKEN_HEADER} "
                        "header or ?token=",
                        "INVALID_SESSION_ID",
                    )
                ],
            )

    def _control(self, path: str, raw: bytes) -> None:
        match = re.match(r"^/_standin/leads/(?P<key>[^/]+)/status$", path)
        if match is None:
            raise _not_found()
        self._allow("POST")
        try:
            body = json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("Status"), str):
            raise _bad('expected {"Status": ..., "Reason"?: ..., "OwnerId"?: ...}', "INVALID_INPUT")
        try:
            status = self.server.standin.rep_changes_status(
                unquote(match.group("key")),
                body["Status"],
                reason=body.get("Reason"),
                owner_id=body.get("OwnerId"),
            )
        except KeyError as exc:
            raise _not_found(str(exc.args[0])) from None
        except ValueError as exc:
            raise _bad(str(exc), "INVALID_INPUT") from None
        except OutboundDeliveryError as exc:
            raise _ApiError(HTTPStatus.BAD_GATEWAY, [_error(str(exc), "OUTBOUND_FAILED")]) from None
        except RuntimeError as exc:
            raise _ApiError(HTTPStatus.CONFLICT, [_error(str(exc), "NO_OUTBOUND")]) from None
        self._send(HTTPStatus.OK, {"receiver_status": status})


def _record_json(
    sobject: _SObject, record: dict[str, Any], version: str, only: list[str] | None
) -> dict[str, Any]:
    attributes = {
        "type": sobject.name,
        "url": f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}",
    }
    names = [f.name for f in sobject.fields] if only is None else [*only]
    if "Id" not in names:
        names.append("Id")
    return {"attributes": attributes, **{name: record.get(name) for name in names}}


# --------------------------------------------------------------------------------------------
# Public stand-in
# --------------------------------------------------------------------------------------------

_FAULTS: dict[int, tuple[str, str]] = {
    HTTPStatus.UNAUTHORIZED: (_SESSION_INVALID, "INVALID_SESSION_ID"),
    HTTPStatus.FORBIDDEN: ("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED"),
    HTTPStatus.INTERNAL_SERVER_ERROR: (
        "An unexpected error occurred. Please include this ErrorId if you contact support: "
        "{error_id}",
        "UNKNOWN_EXCEPTION",
    ),
    HTTPStatus.SERVICE_UNAVAILABLE: (
        "Server is temporarily unavailable. Please try again later.",
        "SERVER_UNAVAILABLE",
    ),
}


@dataclass
class _State:
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in ("Lead", "Task")}
    )
    """Type -> 18-character id -> field values (deleted records keep IsDeleted=True)."""
    external: dict[str, dict[str, str]] = field(
        default_factory=lambda: {name: {} for name in ("Lead", "Task")}
    )
    """Type -> lower-cased external id -> record id (live records only)."""
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: deque[int] = field(default_factory=deque)
    delays: deque[float] = field(default_factory=deque)
    deliveries: list[OutboundDelivery] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    api_usage: int = 0


class SalesforceStandIn(loopback.LoopbackStandIn):
    """Salesforce's REST API for Lead and Task on loopback, with an outbound channel and faults.

    Use as a context manager, or call :meth:`start` / :meth:`stop`; the server runs in a
    background daemon thread and every method is thread-safe. ``access_token`` is the session
    the OAuth endpoint hands out and the data API accepts (:meth:`expire_session` replaces it);
    ``client_id`` / ``client_secret`` are the connected app's credentials.
    """

    server_class = _Server
    handler_class = _Handler
    thread_name = "salesforce-standin"
    cut_connections_on_close = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        control_token: str | None = None,
    ) -> None:
        super().__init__(host, port, control_token)
        self.client_id = client_id
        self.client_secret = client_secret
        self._access_token = access_token
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._state = _State()
        self._ids = {"Lead": _IdSequence("00Q"), "Task": _IdSequence("00T")}
        self.org_id = _IdSequence("00D").new()
        self.user_id = _IdSequence("005").new()
        """The integration user: default owner and author of records the API writes."""
        self._outbound_url: str | None = None
        self._outbound_secret = ""
        self._down = False

    # -- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving and release the port; answers held by delays are dropped."""
        super().stop()
        self._down = False

    def down(self) -> None:
        """An outage: close the listening socket and cut open connections until :meth:`up`.

        Clients then get "connection refused" (or a reset on a pooled connection). Records,
        faults and settings are kept.
        """
        if self._bound is None or self._down:
            raise RuntimeError("down() needs a running stand-in that is not already down")
        self._close_server()
        self._down = True

    def up(self) -> None:
        """End the outage: listen again on the same port, so :attr:`url` stays valid."""
        if self._bound is None or not self._down:
            raise RuntimeError("up() needs a stand-in that down() took down")
        self._serve(self._bound[1])
        self._down = False

    @property
    def is_down(self) -> bool:
        return self._down

    def _url_host(self) -> str:
        """The instance URL names the host as given, and stays valid while :meth:`down`."""
        return self.host

    # -- sessions ------------------------------------------------------------------------

    @property
    def access_token(self) -> str:
        """The session token the data API accepts now."""
        with self._lock:
            return self._access_token

    def expire_session(self) -> str:
        """Invalidate the current session (401 INVALID_SESSION_ID from now on) and return the
        new token the OAuth endpoint will hand out, as when a Salesforce session times out."""
        with self._lock:
            self._access_token = f"{self.org_id[:15]}!{secrets.token_urlsafe(48)}"
            return self._access_token

    def _token_valid(self, token: str) -> bool:
        with self._lock:
            expected = self._access_token.encode("utf-8")
        return bool(token) and hmac.compare_digest(token.encode("utf-8"), expected)

    def _issue_token(self) -> dict[str, Any]:
        issued_at = str(int(time.time() * 1000))
        identity = f"{self.url}/id/{self.org_id}/{self.user_id}"
        # Salesforce signs id + issued_at with the client secret so a client can check them.
        mac = hmac.new(
            self.client_secret.encode("utf-8"), (identity + issued_at).encode("utf-8"), "sha256"
        )
        return {
            "access_token": self.access_token,
            "signature": base64.b64encode(mac.digest()).decode("ascii"),
            "scope": "api",
            "instance_url": self.url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }

    def _count_api_call(self) -> str:
        with self._lock:
            self._state.api_usage += 1
            return f"api-usage={self._state.api_usage}/{DAILY_API_LIMIT}"

    # -- inspection ----------------------------------------------------------------------

    @property
    def leads(self) -> list[dict[str, Any]]:
        """Every live lead's fields (no ``attributes``), in creation order."""
        return self._live("Lead")

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """Every live task's fields, in creation order."""
        return self._live("Task")

    def lead(self, key: str) -> dict[str, Any] | None:
        """The live lead with this id (15 or 18 characters) or external id."""
        with self._lock:
            record_id = self._resolve_lead(key)
            return None if record_id is None else copy.deepcopy(self._records("Lead")[record_id])

    def lead_by_external_id(self, value: str) -> dict[str, Any] | None:
        """The live lead whose ``Nurture_Lead_Id__c`` matches (case-insensitively)."""
        with self._lock:
            record_id = self._state.external["Lead"].get(value.lower())
            return None if record_id is None else copy.deepcopy(self._records("Lead")[record_id])

    def tasks_for(self, lead: str) -> list[dict[str, Any]]:
        """The live tasks whose WhoId is this lead (given by id or external id)."""
        with self._lock:
            lead_id = self._resolve_lead(key=lead) or to_18_char_id(lead)
            return [t for t in self._live("Task") if lead_id is not None and t["WhoId"] == lead_id]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every answered request, oldest first."""
        with self._lock:
            return list(self._state.requests)

    @property
    def api_usage(self) -> int:
        """Data-API calls counted so far (what ``Sforce-Limit-Info`` reports)."""
        with self._lock:
            return self._state.api_usage

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` is true, re-checking on every change; False on timeout.

        The predicate runs with the stand-in's (re-entrant) lock held, so it may call the
        inspection methods but must not wait on another thread that calls into the stand-in.
        """
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def clear(self) -> None:
        """Forget records, requests, faults and notifications; keep sessions and settings."""
        with self._changed:
            self._state = _State()
            self._changed.notify_all()

    def _live(self, sobject: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._records(sobject).values() if not r["IsDeleted"]]

    def _records(self, sobject: str) -> dict[str, dict[str, Any]]:
        return self._state.records[sobject]

    def _resolve_lead(self, key: str) -> str | None:
        """A live lead's id from its id or external id; call with the lock held."""
        record_id = to_18_char_id(key)
        leads = self._records("Lead")
        if record_id is not None and record_id in leads and not leads[record_id]["IsDeleted"]:
            return record_id
        return self._state.external["Lead"].get(key.lower())

    def _record_request(self, method: str, path: str, status: int) -> None:
        with self._changed:
            self._state.requests.append(RecordedRequest(method, path, int(status)))
            self._changed.notify_all()

    # -- fault injection -----------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1) -> None:
        """Refuse the next ``count`` authenticated data-API requests with ``status``.

        Whatever the request, nothing is read or written. As Salesforce answers them:
        401 ``INVALID_SESSION_ID``, 403 ``REQUEST_LIMIT_EXCEEDED`` (Salesforce's API limit
        answer; it does not use 429), 500 ``UNKNOWN_EXCEPTION``, 503 ``SERVER_UNAVAILABLE``.
        """
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            raise ValueError(
                "Salesforce answers an exhausted API limit with 403 REQUEST_LIMIT_EXCEEDED, "
                "not 429: use fail_next(403)"
            )
        if status not in _FAULTS:
            raise ValueError(f"fail_next takes one of {sorted(_FAULTS)}, got {status}")
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._state.faults.extend([status] * count)

    def delay_after_commit(self, seconds: float, count: int = 1) -> None:
        """Commit the next ``count`` successful writes, then hold each answer ``seconds``.

        Simulates a client that times out after Salesforce saved the record: its retry must
        not create a second one.
        """
        if seconds < 0 or count < 1:
            raise ValueError("seconds must be >= 0 and count >= 1")
        with self._lock:
            self._state.delays.extend([seconds] * count)

    def _take_fault(self) -> _ApiError | None:
        with self._lock:
            if not self._state.faults:
                return None
            status = self._state.faults.popleft()
        message, code = _FAULTS[status]
        left, right, code_number = (secrets.randbelow(n) for n in (10**9, 10**5, 10**9))
        error_id = f"{left}-{right} (-{code_number})"
        return _ApiError(status, [_error(message.format(error_id=error_id), code)])

    def _take_delay(self) -> float | None:
        with self._lock:
            return self._state.delays.popleft() if self._state.delays else None

    # -- record operations (used by the handler; raise _ApiError) -------------------------

    def _new_record(self, sobject: _SObject, now: str) -> dict[str, Any]:
        record: dict[str, Any] = {f.name: None for f in sobject.fields}
        for f in sobject.fields:
            if f.default is not None:
                record[f.name] = f.default or None
            if f.type == "boolean":
                record[f.name] = False
        record.update(
            Id=self._ids[sobject.name].new(),
            OwnerId=self.user_id,
            CreatedDate=now,
            CreatedById=self.user_id,
        )
        return record

    def _apply(
        self, sobject: _SObject, record: dict[str, Any], changes: dict[str, Any], now: str
    ) -> None:
        """Check state-dependent rules, then write ``changes``; call with the lock held."""
        merged = {**record, **changes}
        missing = _required_missing(sobject, merged)
        if missing is not None:
            raise missing
        if sobject is TASK and changes.get("WhoId") is not None:
            changes = {**changes, "WhoId": self._check_who(changes["WhoId"])}
        ext = sobject.external_id
        index = self._state.external[sobject.name]
        if ext in changes and changes[ext] is not None:
            holder = index.get(changes[ext].lower())
            if holder is not None and holder != record["Id"]:
                raise _bad(
                    f"duplicate value found: {ext} duplicates value on record with id: {holder}",
                    "DUPLICATE_VALUE",
                    [],
                )
        if record.get(ext) is not None:
            index.pop(record[ext].lower(), None)
        record.update(changes, LastModifiedDate=now, LastModifiedById=self.user_id)
        record["SystemModstamp"] = now
        if record.get(ext) is not None:
            index[record[ext].lower()] = record["Id"]
        if sobject is LEAD:
            record["Name"] = " ".join(p for p in (record["FirstName"], record["LastName"]) if p)
        else:
            record["IsClosed"] = record["Status"] == "Completed"
        self._changed.notify_all()

    def _check_who(self, who: str) -> str:
        """The 18-character id of the live, unconverted lead a WhoId names; lock held."""
        lead_id = to_18_char_id(who) or ""
        lead = self._records("Lead").get(lead_id)
        if lead is None or lead["IsDeleted"]:
            raise _bad(
                f"Name ID: id value of incorrect type: {who}",
                "FIELD_INTEGRITY_EXCEPTION",
                ["WhoId"],
            )
        if lead["IsConverted"]:
            raise _bad(_CONVERTED, "CANNOT_UPDATE_CONVERTED_LEAD", [])
        return lead_id

    def _create(self, sobject: _SObject, changes: dict[str, Any]) -> str:
        now = _sf_datetime(datetime.now(UTC))
        with self._changed:
            record = self._new_record(sobject, now)
            self._apply(sobject, record, changes, now)
            self._records(sobject.name)[record["Id"]] = record
            return str(record["Id"])

    def _live_record(self, sobject: _SObject, record_id: str | None) -> dict[str, Any]:
        """The record to write to; call with the lock held."""
        record = self._records(sobject.name).get(record_id or "")
        if record is None:
            raise _not_found()
        if record["IsDeleted"]:
            raise _ApiError(
                HTTPStatus.NOT_FOUND, [_error("entity is deleted", "ENTITY_IS_DELETED", [])]
            )
        if sobject is LEAD and record["IsConverted"]:
            raise _bad(_CONVERTED, "CANNOT_UPDATE_CONVERTED_LEAD", [])
        return record

    def _update(self, sobject: _SObject, record_id: str, changes: dict[str, Any]) -> None:
        now = _sf_datetime(datetime.now(UTC))
        with self._changed:
            self._apply(sobject, self._live_record(sobject, record_id), changes, now)

    def _upsert(
        self, sobject: _SObject, ext: _Field, value: str, changes: dict[str, Any]
    ) -> tuple[str, bool]:
        """Update the record with this external id, or create it; True when created."""
        if len(value) > ext.length:
            raise _bad(
                f"{ext.label}: data value too large: {value} (max length={ext.length})",
                "STRING_TOO_LONG",
                [ext.name],
            )
        now = _sf_datetime(datetime.now(UTC))
        with self._changed:
            existing = self._state.external[sobject.name].get(value.lower())
            if existing is not None:
                self._apply(sobject, self._live_record(sobject, existing), changes, now)
                return existing, False
            record = self._new_record(sobject, now)
            self._apply(sobject, record, {**changes, ext.name: value}, now)
            self._records(sobject.name)[record["Id"]] = record
            return str(record["Id"]), True

    def _read(self, sobject: _SObject, record_id: str | None) -> dict[str, Any]:
        with self._lock:
            record = self._records(sobject.name).get(record_id or "")
            if record is None or record["IsDeleted"]:
                raise _not_found()
            return copy.deepcopy(record)

    def _external_to_id(self, sobject: _SObject, value: str) -> str:
        with self._lock:
            record_id = self._state.external[sobject.name].get(value.lower())
        if record_id is None:
            raise _not_found(
                f"Provided external ID field does not exist or is not accessible: {value}"
            )
        return record_id

    def _delete(self, sobject: _SObject, record_id: str | None) -> None:
        now = _sf_datetime(datetime.now(UTC))
        with self._changed:
            record = self._records(sobject.name).get(record_id or "")
            if record is None:
                raise _not_found()
            if record["IsDeleted"]:
                raise _ApiError(
                    HTTPStatus.NOT_FOUND, [_error("entity is deleted", "ENTITY_IS_DELETED", [])]
                )
            ext = record.get(sobject.external_id)
            if ext is not None:
                self._state.external[sobject.name].pop(ext.lower(), None)
            record.update(IsDeleted=True, LastModifiedDate=now, SystemModstamp=now)
            if sobject.name == "Lead":  # as in Salesforce: its activities go with it
                for task in self._records("Task").values():
                    if task.get("WhoId") == record["Id"] and not task["IsDeleted"]:
                        task.update(IsDeleted=True, LastModifiedDate=now, SystemModstamp=now)
            self._changed.notify_all()

    # -- outbound notifications ----------------------------------------------------------

    def set_outbound(self, url: str | None, secret: str = "") -> None:
        """Post status-change notifications to ``url``, signed with ``secret``; None: stop."""
        if url is not None and not _is_http_url(url):
            raise ValueError(f"{url!r} is not an absolute http(s) URL")
        if url is not None and not secret:
            raise ValueError("an outbound URL needs a signing secret")
        with self._lock:
            self._outbound_url = url
            self._outbound_secret = secret

    def rep_changes_status(
        self,
        lead: str,
        status: str,
        reason: str | None = None,
        owner_id: str | None = None,
        *,
        timeout: float = 10.0,
    ) -> int:
        """A sales rep changes a lead's Status in the CRM; notify the engine; return its status.

        ``lead`` is the lead's id or its ``Nurture_Lead_Id__c``. "Working - Contacted" is
        contact, "Closed - Not Converted" with a ``reason`` a rejection, "Closed - Converted"
        a conversion (the lead becomes IsConverted and, as in Salesforce, read-only to the
        API: CANNOT_UPDATE_CONVERTED_LEAD). ``owner_id`` reassigns it (a 005/00G id).

        The record changes even when delivery fails: an unreachable URL raises
        :class:`OutboundDeliveryError`, and that or a non-2xx answer leaves the notification
        pending for :meth:`redeliver`. Raises RuntimeError without an outbound URL, KeyError
        for an unknown lead, ValueError for a bad status or owner or a converted lead.
        """
        if status not in LEAD_STATUSES:
            raise ValueError(f"Lead Status: bad value for restricted picklist field: {status}")
        owner = None
        if owner_id is not None:
            owner = to_18_char_id(owner_id)
            if owner is None or not owner.startswith(_OWNER_PREFIXES):
                raise ValueError(f"Owner ID: id value of incorrect type: {owner_id}")
        if reason is not None and len(reason) > 255:
            raise ValueError("Status Reason: data value too large (max length=255)")
        now = datetime.now(UTC)
        stamp = _sf_datetime(now)
        with self._changed:
            if self._outbound_url is None:
                raise RuntimeError("no outbound URL; call set_outbound(url, secret) first")
            record_id = self._resolve_lead(lead)
            if record_id is None:
                raise KeyError(f"no lead has the id or {LEAD_EXTERNAL_ID} {lead!r}")
            record = self._records("Lead")[record_id]
            if record["IsConverted"]:
                raise ValueError(f"lead {record_id} is converted; its status cannot change")
            record.update(
                Status=status,
                Status_Reason__c=reason,
                LastModifiedDate=stamp,
                LastModifiedById=owner or record["OwnerId"],
                SystemModstamp=stamp,
            )
            if owner is not None:
                record["OwnerId"] = owner
            if status == CONVERTED_STATUS:
                record.update(IsConverted=True, ConvertedDate=now.date().isoformat())
            pending_id = str(uuid.uuid4())
            notification = {
                "NotificationId": pending_id,
                "sobject": "Lead",
                "id": record_id,
                LEAD_EXTERNAL_ID: record[LEAD_EXTERNAL_ID],
                HANDOFF_FIELD: _number(record.get(HANDOFF_FIELD)),
                "Status": status,
                "Reason": reason,
                "OwnerId": record["OwnerId"],
                "LastModifiedDate": stamp,
            }
            pending = _Pending(
                notification_id=pending_id,
                payload=json.dumps(notification, separators=(",", ":")).encode("utf-8"),
            )
            self._state.pending.append(pending)
            self._changed.notify_all()
        delivery = self._deliver(pending, timeout)
        if delivery.status is None:
            raise OutboundDeliveryError(
                f"could not post the notification to {delivery.url}: {delivery.error}"
            )
        return delivery.status

    @property
    def outbound_deliveries(self) -> list[OutboundDelivery]:
        """Every delivery attempt, oldest first."""
        with self._lock:
            return list(self._state.deliveries)

    @property
    def pending_notifications(self) -> list[dict[str, Any]]:
        """Notifications not yet acknowledged with a 2xx, oldest first."""
        with self._lock:
            return [json.loads(p.payload) for p in self._state.pending]

    def redeliver(self, *, timeout: float = 10.0) -> list[OutboundDelivery]:
        """Post every pending notification again, in order (as Salesforce retries outbound
        messages); return the attempts. Acknowledged ones stop being pending."""
        with self._lock:
            pending = list(self._state.pending)
        return [self._deliver(p, timeout) for p in pending]

    def _deliver(self, pending: _Pending, timeout: float) -> OutboundDelivery:
        with self._lock:
            url, secret = self._outbound_url, self._outbound_secret
            pending.attempts += 1
            attempt = pending.attempts
        if url is None:
            raise RuntimeError("no outbound URL; call set_outbound(url, secret) first")
        timestamp = str(int(time.time()))
        signature = sign_notification(pending.payload, secret, timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "SalesforceStandIn-Outbound/1.0",
            SIGNATURE_HEADER: signature,
            TIMESTAMP_HEADER: timestamp,
            NOTIFICATION_ID_HEADER: pending.notification_id,
        }
        status: int | None = None
        body = b""
        error: str | None = None
        try:
            status, body = loopback.post(url, pending.payload, headers, timeout)
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery = OutboundDelivery(
            notification_id=pending.notification_id,
            url=url,
            payload=pending.payload,
            signature=signature,
            timestamp=timestamp,
            status=status,
            response_body=body,
            error=error,
            attempt=attempt,
        )
        with self._changed:
            self._state.deliveries.append(delivery)
            if delivery.acknowledged and pending in self._state.pending:
                self._state.pending.remove(pending)
            self._changed.notify_all()
        return delivery


# --------------------------------------------------------------------------------------------
# python -m nurture.standins.crm_standin
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = standin_cli.standin_parser(
        "nurture.standins.crm_standin",
        "Serve a local stand-in for the Salesforce REST API (Lead, Task, OAuth).",
        port=3031,
    )
    parser.add_argument("--access-token", default=DEFAULT_ACCESS_TOKEN)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--outbound-url", default=None, help="where status changes are posted")
    parser.add_argument("--outbound-secret", default=None, help="HMAC secret for --outbound-url")
    standin_cli.add_control_token(parser, "demo control")
    args = parser.parse_args(argv)
    token = standin_cli.control_token(args)
    standin = SalesforceStandIn(
        host=args.host,
        port=args.port,
        access_token=args.access_token,
        client_id=args.client_id,
        client_secret=args.client_secret,
        control_token=token,
    )
    if args.outbound_url:
        try:
            standin.set_outbound(args.outbound_url, args.outbound_secret or "")
        except ValueError as exc:
            print(f"--outbound-url: {exc}", file=sys.stderr)
            return 2
    return standin_cli.serve_until_stopped(
        standin,
        "Salesforce stand-in",
        f"{args.host}:{args.port}",
        lambda: f"{len(standin.leads)} lead(s), {len(standin.tasks)} task(s)",
        notes=lambda: [f"The /_standin/ control needs the header {CONTROL_TOKEN_HEADER}: {token}"],
    )


if __name__ == "__main__":
    sys.exit(main())
