"""A local stand-in for SendGrid's v3 HTTP API, for tests and offline runs.

The engine always talks to SendGrid through the real ``sendgrid`` client
(``SendGridAPIClient(api_key, host=base_url)``). This module serves the small part of the v3
API the engine uses, on loopback, answering the way SendGrid answers, so that the real client
(and the error classes of ``python_http_client``) cannot tell the two apart:

* ``POST /v3/mail/send`` - Bearer auth, SendGrid's request validation with SendGrid-shaped
  ``{"errors": [{"message", "field", "help"}]}`` bodies, ``202`` with ``X-Message-Id``.
* ``GET /v3/messages`` - a minimal Email Activity Feed, so the engine can ask after a crash
  whether SendGrid already accepted a message carrying a given custom argument. Queries use
  SendGrid's documented syntax, e.g. ``unique_args['nurture_key']="lead-1:x:1"``; see
  :func:`parse_activity_query` for the supported subset.
* The signed Event Webhook: ``GET``/``PATCH /v3/user/webhooks/event/settings`` and
  ``.../settings/signed``. The stand-in owns an ECDSA P-256 key pair, like a SendGrid account
  with signature verification on, and :meth:`SendGridStandIn.emit_events` posts SendGrid-shaped,
  signed event batches for accepted messages to the configured URL (over HTTP for demos:
  ``POST /_standin/messages/<X-Message-Id>/events``, a test control, not a SendGrid API).
* ``POST /v3/recipients/erasejob`` - the Recipients' Data Erasure API: ``{"email_addresses":
  [...]}`` (1 to 5,000) answers ``202 {"job_id"}`` and forgets every accepted message and
  activity row addressed to them (SendGrid erases names, addresses, subjects and content).
* A mailbox, as Mailpit or MailHog give developers: ``GET /_standin/mailbox`` lists what was
  sent and ``GET /_standin/mailbox/<X-Message-Id>`` shows a message's HTML (sandboxed), text
  and links (``nurture.standins.standin_mailbox``).

The ``/_standin/`` routes are open in tests; given a ``control_token`` (``nurture up`` and
the command line always give one) they need it, in the ``X-Standin-Token`` header or as
``?token=``: otherwise any local process could have signed webhook events posted to the
engine.

Standard library plus ``cryptography`` (which ``sendgrid`` itself needs to verify the Event
Webhook), so it runs inside a sync CLI, an asyncio test or on its own::

    python -m nurture.standins.sendgrid_standin --port 3030 [--api-key KEY]
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nurture.standins import loopback, standin_cli
from nurture.standins.loopback import CONTROL_TOKEN_HEADER
from nurture.standins.standin_mailbox import (
    MAILBOX_PATH,
    PAGE_HEADERS,
    mailbox_page,
    mailbox_path,
    message_page,
    not_found_page,
)

__all__ = [
    "CONTROL_TOKEN_HEADER",
    "EVENT_WEBHOOK_USER_AGENT",
    "MAX_CUSTOM_ARGS_BYTES",
    "MAX_PERSONALIZATIONS",
    "MAX_REQUEST_BYTES",
    "RESERVED_HEADERS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ActivityQueryError",
    "EventWebhookDeliveryError",
    "EventWebhookError",
    "FaultRule",
    "RecordedMessage",
    "SendFault",
    "SendGridStandIn",
    "WebhookDelivery",
    "parse_activity_query",
]

# SendGrid's documented limits for v3 mail/send.
MAX_REQUEST_BYTES = 30 * 1024 * 1024
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255

# What the stand-in reports as the account's mail/send rate limit on 429 answers.
RATE_LIMIT_PER_WINDOW = 600

_HELP_BASE = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_INVALID_GRANT = "The provided authorization grant is invalid, expired, or revoked"
_AUTH_REQUIRED = "authorization required"
_INVALID_ADDRESS = "Does not contain a valid address."

# Headers SendGrid sets itself; a mail/send naming one of them (any case) is refused.
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
_RESERVED_HEADER = (
    "The header you specified is reserved. You may not overwrite the following reserved "
    "headers: x-sg-id, x-sg-eid, received, dkim-signature, Content-Type, "
    "Content-Transfer-Encoding, To, From, Subject, Reply-To, CC, BCC."
)

# Deliberately simple and a little stricter than RFC 5322, like SendGrid's own check:
# a local part without spaces or separators, an "@", and a dotted domain of DNS labels.
_EMAIL_RE = re.compile(
    r"^[^\s@<>()\[\],;:\"\\]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)

_ERROR_CLASS_MESSAGES: dict[int, str] = {
    HTTPStatus.UNAUTHORIZED: _INVALID_GRANT,
    HTTPStatus.TOO_MANY_REQUESTS: "too many requests",
    HTTPStatus.NOT_FOUND: "resource not found",
    HTTPStatus.METHOD_NOT_ALLOWED: "method not allowed",
}


@dataclass(frozen=True)
class RecordedMessage:
    """One request SendGrid accepted (answered 202), as the stand-in recorded it."""

    message_id: str
    """The ``X-Message-Id`` returned to the client."""
    received_at: datetime
    """When the request was accepted (UTC)."""
    from_email: str
    to: list[str]
    """Every recipient address (to, cc, bcc) across all personalizations, in request order."""
    subject: str
    """Top-level subject, else the first personalization's subject ("" with a template only)."""
    contents: dict[str, str]
    """MIME type -> value, e.g. ``{"text/plain": ..., "text/html": ...}``."""
    custom_args: dict[str, str]
    """Top-level custom_args overlaid with each personalization's (later ones win)."""
    headers: dict[str, str]
    """Top-level headers overlaid with each personalization's (later ones win), names as sent."""
    categories: list[str]
    body: dict[str, Any]
    """The full parsed request JSON."""


@dataclass(frozen=True)
class _ActivityRow:
    """One Email Activity Feed entry: SendGrid lists one per recipient of an accepted request."""

    msg_id: str
    message_id: str
    from_email: str
    to_email: str
    subject: str
    unique_args: dict[str, str]
    categories: tuple[str, ...]
    template_id: str
    last_event_time: str
    status: str = "delivered"

    def as_json(self) -> dict[str, Any]:
        return {
            "from_email": self.from_email,
            "msg_id": self.msg_id,
            "subject": self.subject,
            "to_email": self.to_email,
            "status": self.status,
            "opens_count": 0,
            "clicks_count": 0,
            "last_event_time": self.last_event_time,
        }


@dataclass(frozen=True)
class WebhookDelivery:
    """One Event Webhook batch the stand-in built for :meth:`SendGridStandIn.emit_events`.

    Carries everything a test needs to replay the exact same POST or to tamper with it.
    """

    url: str
    """Where the batch was posted."""
    status: int | None
    """The receiver's HTTP status; ``None`` when nothing was posted because the settings
    switch off the type of every event in the batch."""
    response_body: bytes
    events: list[dict[str, Any]]
    """The events as posted, in order (those whose type is switched off are left out)."""
    payload: bytes
    """The exact request body: compact JSON with sorted keys and a trailing CRLF, as SendGrid
    sends it. The signature covers these bytes, so a receiver must verify the raw body."""
    timestamp: str
    """The ``X-Twilio-Email-Event-Webhook-Timestamp`` value (unix seconds)."""
    signature: str | None
    """The ``X-Twilio-Email-Event-Webhook-Signature`` value; ``None`` when signing is off."""
    headers: dict[str, str]
    """The request headers the stand-in set (HTTP plumbing such as Host aside)."""


@dataclass(frozen=True)
class SendFault:
    """What happens to one valid mail/send: refused with ``status`` (4xx/5xx, nothing
    recorded), or recorded and its 202 held for ``delay`` seconds; neither: accepted."""

    status: int | None = None
    delay: float | None = None


FaultRule = Callable[[dict[str, str]], SendFault | None]
"""Decides a send's fault from its merged custom_args: :meth:`SendGridStandIn.set_fault_rule`."""


# --------------------------------------------------------------------------------------------
# Errors and validation of v3 mail/send bodies
# --------------------------------------------------------------------------------------------


def _error(message: str, field: str | None, anchor: str | None = None) -> dict[str, Any]:
    """A SendGrid validation error object; ``anchor`` names the docs section for ``help``."""
    help_url = f"{_HELP_BASE}#message.{anchor}" if anchor else None
    return {"message": message, "field": field, "help": help_url}


def _errors_body(errors: list[dict[str, Any]]) -> bytes:
    return json.dumps({"errors": errors}).encode("utf-8")


def _simple_errors_body(message: str, field: str | None = None) -> bytes:
    """The short error shape SendGrid uses outside validation (auth, 404, 429, 5xx)."""
    return _errors_body([{"field": field, "message": message}])


def _json_type(value: object) -> str:
    """The JSON-schema type name SendGrid uses in its "Invalid type" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(expected: str, value: object, field: str, anchor: str) -> dict[str, Any]:
    return _error(f"Invalid type. Expected: {expected}, given: {_json_type(value)}.", field, anchor)


def _is_valid_email(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 320 and bool(_EMAIL_RE.match(value))


def _validate_from(body: dict[str, Any]) -> list[dict[str, Any]]:
    sender = body.get("from")
    if sender is not None and not isinstance(sender, dict):
        return [_type_error("object", sender, "from", "from")]
    if not sender or "email" not in sender or sender.get("email") in (None, ""):
        return [
            _error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.  e.g. "
                '{"email" : "example@example.com"}  or {"email" : "example@example.com", '
                '"name" : "Example Recipient"}.',
                "from.email",
                "from",
            )
        ]
    if not _is_valid_email(sender["email"]):
        return [_error("The from email does not contain a valid address.", "from.email", "from")]
    return []


def _validate_reply_to(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    reply_to = body.get("reply_to")
    if reply_to is not None:
        if not isinstance(reply_to, dict):
            errors.append(_type_error("object", reply_to, "reply_to", "reply_to"))
        elif not _is_valid_email(reply_to.get("email")):
            errors.append(
                _error(
                    "The reply_to email does not contain a valid address.",
                    "reply_to.email",
                    "reply_to",
                )
            )
    reply_to_list = body.get("reply_to_list")
    if reply_to_list is not None:
        if not isinstance(reply_to_list, list):
            errors.append(_type_error("array", reply_to_list, "reply_to_list", "reply_to_list"))
        else:
            for i, item in enumerate(reply_to_list):
                email = item.get("email") if isinstance(item, dict) else None
                if not _is_valid_email(email):
                    errors.append(
                        _error(_INVALID_ADDRESS, f"reply_to_list.{i}.email", "reply_to_list")
                    )
    return errors


def _validate_custom_args(
    args: object, field: str, anchor: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Type-check one custom_args object; return its errors and its string-valued entries."""
    if args is None:
        return [], {}
    if not isinstance(args, dict):
        return [_type_error("object", args, field, anchor)], {}
    errors: list[dict[str, Any]] = []
    good: dict[str, str] = {}
    for key, value in args.items():
        if isinstance(value, str):
            good[key] = value
        else:
            errors.append(_type_error("string", value, f"{field}.{key}", anchor))
    return errors, good


def _custom_args_size(args: dict[str, str]) -> int:
    return len(json.dumps(args, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _validate_address_list(
    items: object, kind: str, base: str, required: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """Validate a personalization's to/cc/bcc array; return errors and the addresses seen."""
    anchor = f"personalizations.{kind}"
    field = f"{base}.{kind}"
    if items is None and not required:
        return [], []
    if items is not None and not isinstance(items, list):
        return [_type_error("array", items, field, anchor)], []
    if not items:
        if required:
            return [
                _error(
                    "The to array is required for all personalization objects, and must have at "
                    "least one email object with a valid email address.",
                    field,
                    anchor,
                )
            ], []
        return [
            _error(
                f"The {kind} array, when used, must at least have an email parameter with a "
                "valid email address and it may also contain a name parameter.",
                field,
                anchor,
            )
        ], []
    errors: list[dict[str, Any]] = []
    addresses: list[str] = []
    assert isinstance(items, list)
    for j, item in enumerate(items):
        item_field = f"{field}.{j}.email"
        if not isinstance(item, dict):
            errors.append(_type_error("object", item, f"{field}.{j}", anchor))
            continue
        email = item.get("email")
        if email in (None, ""):
            errors.append(_error(f"The {kind} email parameter is required.", item_field, anchor))
        elif not _is_valid_email(email):
            errors.append(_error(_INVALID_ADDRESS, item_field, anchor))
        else:
            addresses.append(email)
    return errors, addresses


def _validate_personalizations(body: dict[str, Any]) -> list[dict[str, Any]]:
    personalizations = body.get("personalizations")
    if personalizations is not None and not isinstance(personalizations, list):
        return [_type_error("array", personalizations, "personalizations", "personalizations")]
    if not personalizations:
        return [
            _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
                "personalizations",
            )
        ]
    if len(personalizations) > MAX_PERSONALIZATIONS:
        return [
            _error(
                "The personalization block is limited to 1000 personalizations per API request. "
                f"You have provided {len(personalizations)} personalizations. Please consider "
                "splitting this into multiple requests and resending your request.",
                "personalizations",
                "personalizations",
            )
        ]
    errors: list[dict[str, Any]] = []
    total_recipients = 0
    for i, p in enumerate(personalizations):
        base = f"personalizations.{i}"
        if not isinstance(p, dict):
            errors.append(_type_error("object", p, base, "personalizations"))
            continue
        seen: dict[str, str] = {}
        for kind, required in (("to", True), ("cc", False), ("bcc", False)):
            list_errors, addresses = _validate_address_list(p.get(kind), kind, base, required)
            errors.extend(list_errors)
            total_recipients += len(addresses)
            for address in addresses:
                folded = address.lower()
                if folded in seen:
                    errors.append(
                        _error(
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc. We found the first duplicate instance of "
                            f"[{address}] in the {base}.{kind} field.",
                            base,
                            "personalizations",
                        )
                    )
                seen.setdefault(folded, kind)
        subject = p.get("subject")
        if subject is not None and not isinstance(subject, str):
            errors.append(_type_error("string", subject, f"{base}.subject", "subject"))
        args_errors, _ = _validate_custom_args(
            p.get("custom_args"), f"{base}.custom_args", "personalizations.custom_args"
        )
        errors.extend(args_errors)
        errors.extend(_validate_headers(p.get("headers"), f"{base}.headers"))
    if total_recipients > MAX_RECIPIENTS:
        errors.append(
            _error(
                "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
                "personalizations",
                "personalizations",
            )
        )
    return errors


def _validate_subject(body: dict[str, Any]) -> list[dict[str, Any]]:
    subject = body.get("subject")
    if subject is not None and not isinstance(subject, str):
        return [_type_error("string", subject, "subject", "subject")]
    if subject or body.get("template_id"):
        return []
    personalizations = body.get("personalizations")
    if (
        isinstance(personalizations, list)
        and personalizations
        and all(isinstance(p, dict) and p.get("subject") for p in personalizations)
    ):
        return []
    return [
        _error(
            "The subject is required. You can get around this requirement if you use a "
            "template with a subject defined or if every personalization has a subject defined.",
            "subject",
            "subject",
        )
    ]


def _validate_content(body: dict[str, Any]) -> list[dict[str, Any]]:
    content = body.get("content")
    if content is not None and not isinstance(content, list):
        return [_type_error("array", content, "content", "content")]
    if not content:
        if body.get("template_id"):
            return []
        return [
            _error(
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block. We typically suggest both "
                "text/plain and text/html blocks are included, but only one block is required.",
                "content",
                "content",
            )
        ]
    errors: list[dict[str, Any]] = []
    types: list[str] = []
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            errors.append(_type_error("object", block, f"content.{i}", "content"))
            continue
        mime = block.get("type")
        if not isinstance(mime, str) or not mime:
            errors.append(
                _error(
                    "The content type must be a string at least one character in length.",
                    f"content.{i}.type",
                    "content.type",
                )
            )
        else:
            types.append(mime.lower())
        value = block.get("value")
        if not isinstance(value, str) or not value:
            errors.append(
                _error(
                    "The content value must be a string at least one character in length.",
                    f"content.{i}.value",
                    "content.value",
                )
            )
    # SendGrid insists that text/plain, then text/html, lead the array when present.
    expected_prefix = [t for t in ("text/plain", "text/html") if t in types]
    if types[: len(expected_prefix)] != expected_prefix:
        errors.append(
            _error(
                "If present, text/plain and text/html may only be the first indices of the "
                "content array in this order.",
                "content",
                "content",
            )
        )
    return errors


def _validate_misc(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    template_id = body.get("template_id")
    if template_id is not None and not isinstance(template_id, str):
        errors.append(_type_error("string", template_id, "template_id", "template_id"))
    categories = body.get("categories")
    if categories is not None:
        if not isinstance(categories, list):
            errors.append(_type_error("array", categories, "categories", "categories"))
        else:
            if len(categories) > MAX_CATEGORIES:
                errors.append(
                    _error(
                        "Too many categories. The limit is 10 categories per request.",
                        "categories",
                        "categories",
                    )
                )
            for i, category in enumerate(categories):
                if not isinstance(category, str):
                    errors.append(_type_error("string", category, f"categories.{i}", "categories"))
                elif len(category) > MAX_CATEGORY_LENGTH:
                    errors.append(
                        _error(
                            "A category cannot have more than 255 characters.",
                            f"categories.{i}",
                            "categories",
                        )
                    )
    errors.extend(_validate_headers(body.get("headers"), "headers"))
    return errors


def _validate_headers(headers: object, field: str) -> list[dict[str, Any]]:
    """A headers object: string values only, and none of the names SendGrid reserves."""
    if headers is None:
        return []
    if not isinstance(headers, dict):
        return [_type_error("object", headers, field, "headers")]
    errors: list[dict[str, Any]] = []
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            errors.append(_error(_RESERVED_HEADER, f"{field}.{name}", "headers"))
        elif not isinstance(value, str):
            errors.append(_type_error("string", value, f"{field}.{name}", "headers"))
    return errors


def _validate_custom_args_totals(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Check type and the 10,000-byte limit of custom_args as each recipient would get them."""
    errors, top = _validate_custom_args(body.get("custom_args"), "custom_args", "custom_args")
    if errors:
        return errors
    if _custom_args_size(top) > MAX_CUSTOM_ARGS_BYTES:
        return [_custom_args_size_error("custom_args")]
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list):
        return []
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict) or not isinstance(p.get("custom_args"), dict):
            continue
        merged = {**top, **{k: v for k, v in p["custom_args"].items() if isinstance(v, str)}}
        if _custom_args_size(merged) > MAX_CUSTOM_ARGS_BYTES:
            errors.append(_custom_args_size_error(f"personalizations.{i}.custom_args"))
    return errors


def _custom_args_size_error(field: str) -> dict[str, Any]:
    return _error(
        "The custom_args parameter is limited to 10,000 bytes of custom arguments "
        "per personalization.",
        field,
        "custom_args",
    )


def validate_mail_send(body: object) -> list[dict[str, Any]]:
    """All SendGrid validation errors for a parsed v3 mail/send body (empty when valid)."""
    if not isinstance(body, dict):
        return [_error("Bad Request", None)]
    errors: list[dict[str, Any]] = []
    for check in (
        _validate_from,
        _validate_personalizations,
        _validate_reply_to,
        _validate_subject,
        _validate_content,
        _validate_custom_args_totals,
        _validate_misc,
    ):
        errors.extend(check(body))
    return errors


# --------------------------------------------------------------------------------------------
# Email Activity Feed query language (the subset the stand-in understands)
# --------------------------------------------------------------------------------------------


class ActivityQueryError(ValueError):
    """The ``query`` parameter of ``GET /v3/messages`` could not be parsed."""


_Predicate = Callable[[_ActivityRow], bool]

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<op>!=|=)
  | (?P<uarg>unique_args\s*\[\s*(?:'(?P<k1>[^']*)'|"(?P<k2>[^"]*)")\s*\])
  | (?P<string>"(?:[^"\\]|\\.)*"|\u201c[^\u201d]*\u201d)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)

_SCALAR_FIELDS = ("msg_id", "from_email", "to_email", "subject", "status", "template_id")


def _tokenize(query: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN_RE.match(query, pos)
        if match is None:
            raise ActivityQueryError(f"unexpected character at position {pos}: {query[pos]!r}")
        pos = match.end()
        if match.group("ws") is not None:
            continue
        if match.group("uarg") is not None:
            key = match.group("k1") if match.group("k1") is not None else match.group("k2")
            tokens.append(("field", f"unique_args:{key}"))
        elif match.group("string") is not None:
            raw = match.group("string")
            # Straight quotes allow backslash escapes; the curly quotes SendGrid's docs
            # sometimes show are taken literally.
            text = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw[1:-1]
            tokens.append(("string", text))
        elif match.group("word") is not None:
            word = match.group("word")
            upper = word.upper()
            if upper in ("AND", "OR", "NOT", "LIKE", "IN"):
                tokens.append(("kw", upper))
            else:
                tokens.append(("field", word))
        else:
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match.group(kind)))
    return tokens


def _like(pattern: str) -> Callable[[str], bool]:
    """SQL LIKE with ``%`` and ``_`` wildcards, case-insensitive."""
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    compiled = re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL)
    return lambda value: bool(compiled.match(value))


def _field_values(row: _ActivityRow, name: str) -> list[str] | None:
    """The values a field has on a row; ``None`` when the row lacks the field."""
    if name.startswith("unique_args:"):
        value = row.unique_args.get(name.split(":", 1)[1])
        return None if value is None else [value]
    if name == "categories":
        return list(row.categories)
    return [getattr(row, name)]


class _QueryParser:
    """Recursive descent over: expr := and (OR and)*; and := unary (AND unary)*;
    unary := NOT unary | '(' expr ')' | FIELD (= | != | LIKE | NOT LIKE) STRING
    | FIELD [NOT] IN '(' STRING (, STRING)* ')'."""

    def __init__(self, query: str) -> None:
        self._tokens = _tokenize(query)
        self._pos = 0

    def parse(self) -> _Predicate:
        predicate = self._expr()
        if self._pos != len(self._tokens):
            raise ActivityQueryError(f"unexpected {self._tokens[self._pos][1]!r}")
        return predicate

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self, kind: str, value: str | None = None) -> str:
        token = self._peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            wanted = value or kind
            found = "end of query" if token is None else repr(token[1])
            raise ActivityQueryError(f"expected {wanted}, found {found}")
        self._pos += 1
        return token[1]

    def _accept(self, kind: str, value: str | None = None) -> bool:
        token = self._peek()
        if token is not None and token[0] == kind and (value is None or token[1] == value):
            self._pos += 1
            return True
        return False

    def _expr(self) -> _Predicate:
        parts = [self._and()]
        while self._accept("kw", "OR"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def _and(self) -> _Predicate:
        parts = [self._unary()]
        while self._accept("kw", "AND"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def _unary(self) -> _Predicate:
        if self._accept("kw", "NOT"):
            inner = self._unary()
            return lambda row: not inner(row)
        if self._accept("lparen"):
            inner = self._expr()
            self._take("rparen")
            return inner
        return self._comparison()

    def _comparison(self) -> _Predicate:
        name = self._take("field")
        if not name.startswith("unique_args:") and name not in (*_SCALAR_FIELDS, "categories"):
            raise ActivityQueryError(f"unsupported query field {name!r}")
        negate = self._accept("kw", "NOT")
        match: Callable[[str], bool]
        if not negate and self._accept("op", "="):
            wanted = self._take("string")
            match = wanted.__eq__
        elif not negate and self._accept("op", "!="):
            wanted = self._take("string")
            match = wanted.__eq__
            negate = True
        elif self._accept("kw", "LIKE"):
            match = _like(self._take("string"))
        elif self._accept("kw", "IN"):
            self._take("lparen")
            options = {self._take("string")}
            while self._accept("comma"):
                options.add(self._take("string"))
            self._take("rparen")
            match = options.__contains__
        else:
            token = self._peek()
            raise ActivityQueryError(
                f"expected an operator after {name!r}, found "
                f"{'end of query' if token is None else repr(token[1])}"
            )

        def predicate(row: _ActivityRow) -> bool:
            values = _field_values(row, name)
            hit = values is not None and any(match(v) for v in values)
            return not hit if negate else hit

        return predicate


def parse_activity_query(query: str) -> Callable[[_ActivityRow], bool]:
    """Compile an Email Activity Feed query into a row predicate.

    Supported (SendGrid's documented syntax, values always double-quoted):

    * fields ``msg_id``, ``from_email``, ``to_email``, ``subject``, ``status``,
      ``template_id``, ``categories`` (matches when any category matches) and
      ``unique_args['name']`` (custom args; ``unique_args["name"]`` also accepted);
    * operators ``=``, ``!=``, ``LIKE`` / ``NOT LIKE`` (``%`` and ``_`` wildcards),
      ``IN ("a", "b")`` / ``NOT IN (...)``;
    * ``AND``, ``OR``, ``NOT`` (any case) and parentheses.

    Raises :class:`ActivityQueryError` for anything else.
    """
    return _QueryParser(query).parse()


# --------------------------------------------------------------------------------------------
# Event Webhook: settings, event objects, signing and delivery
# --------------------------------------------------------------------------------------------

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
EVENT_WEBHOOK_USER_AGENT = "SendGrid Event API"

# Event name -> the settings flag that switches it on; SendGrid posts only switched-on types.
EVENT_SETTINGS: dict[str, str] = {
    "processed": "processed",
    "deferred": "deferred",
    "delivered": "delivered",
    "bounce": "bounce",
    "dropped": "dropped",
    "open": "open",
    "click": "click",
    "spamreport": "spam_report",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "group_unsubscribe",
    "group_resubscribe": "group_resubscribe",
}
_EVENT_FLAGS = tuple(sorted(set(EVENT_SETTINGS.values())))
_OPTIONAL_SETTING_STRINGS = (
    "friendly_name",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_token_url",
)

# Delivery events carry the SMTP id; engagement events (opens, clicks, unsubscribes) do not.
_DELIVERY_EVENTS = frozenset({"processed", "deferred", "delivered", "bounce", "dropped"})
_ASM_EVENTS = frozenset({"group_unsubscribe", "group_resubscribe"})
_BOUNCE_TYPES = ("bounce", "blocked")

_READER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
_READER_IP = "203.0.113.7"  # TEST-NET-3, a documentation address
_READER = {"useragent": _READER_AGENT, "ip": _READER_IP}

# Fields each event type carries beyond the common ones, with plausible SendGrid values.
_EVENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "delivered": {"response": "250 2.0.0 OK", "tls": 1},
    "deferred": {"response": "451 4.7.1 Try again later", "attempt": "1"},
    "dropped": {"reason": "Bounced Address", "status": "5.0.0"},
    "open": {**_READER, "sg_machine_open": False},
    "click": {**_READER, "url_offset": {"index": 0, "type": "html"}},
    "group_unsubscribe": dict(_READER),
    "group_resubscribe": dict(_READER),
}
_BOUNCE_DEFAULTS: dict[str, dict[str, str]] = {
    "bounce": {
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "status": "5.1.1",
    },
    "blocked": {"reason": "554 5.7.1 Message rejected due to local policy", "status": "5.7.1"},
}


class EventWebhookError(RuntimeError):
    """The Event Webhook is not set up (no URL, or disabled), so no event can be posted."""


class EventWebhookDeliveryError(EventWebhookError):
    """The configured webhook URL could not be reached (refused, reset, timed out)."""


@dataclass
class _WebhookSettings:
    """The account's one Event Webhook, as ``/v3/user/webhooks/event/settings`` shows it."""

    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    enabled: bool = False
    url: str = ""
    signed: bool = True
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(_EVENT_FLAGS, True))
    extra: dict[str, str | None] = field(
        default_factory=lambda: dict.fromkeys(_OPTIONAL_SETTING_STRINGS)
    )

    def as_json(self, public_key: str) -> dict[str, Any]:
        body: dict[str, Any] = {"enabled": self.enabled, "url": self.url}
        body["account_status_change"] = False
        body.update(self.flags)
        body["friendly_name"] = self.extra["friendly_name"]
        body["id"] = self.id
        # SendGrid never echoes the OAuth client secret.
        body["oauth_client_id"] = self.extra["oauth_client_id"] or ""
        body["oauth_token_url"] = self.extra["oauth_token_url"] or ""
        if self.signed:
            body["public_key"] = public_key
        return body

    def apply(self, patch: dict[str, Any]) -> None:
        """Apply a validated PATCH body; fields it leaves out keep their values."""
        self.url = patch["url"]
        if "enabled" in patch:
            self.enabled = patch["enabled"]
        for name in _EVENT_FLAGS:
            if name in patch:
                self.flags[name] = patch[name]
        for name in _OPTIONAL_SETTING_STRINGS:
            if name in patch:
                self.extra[name] = patch[name]

    def snapshot(self) -> _WebhookSettings:
        return copy.deepcopy(self)


def _is_webhook_url(value: object) -> bool:
    """An absolute http(s) URL with a host, as SendGrid accepts for the Event Webhook."""
    if not isinstance(value, str) or not value or any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _setting_error(field: str | None, message: str) -> dict[str, Any]:
    return {"field": field, "message": message}


def validate_webhook_settings(body: object) -> list[dict[str, Any]]:
    """Errors for a ``PATCH /v3/user/webhooks/event/settings`` body (empty when valid)."""
    if not isinstance(body, dict):
        return [_setting_error(None, "Bad Request")]
    errors: list[dict[str, Any]] = []
    url = body.get("url")
    if url is None:
        errors.append(_setting_error("url", "url is required"))
    elif not _is_webhook_url(url):
        errors.append(_setting_error("url", f"'{url}' is not a valid url"))
    for name in ("enabled", "account_status_change", *_EVENT_FLAGS):
        if name in body and not isinstance(body[name], bool):
            message = f"Invalid type. Expected: boolean, given: {_json_type(body[name])}."
            errors.append(_setting_error(name, message))
    for name in _OPTIONAL_SETTING_STRINGS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            message = f"Invalid type. Expected: string, given: {_json_type(value)}."
            errors.append(_setting_error(name, message))
    return errors


def _check_entry(
    entry: object, rows: list[_ActivityRow], asm_group_id: int | None
) -> tuple[_ActivityRow, dict[str, Any]]:
    """Validate one emit entry; return the recipient row it is about and the entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"each event entry must be an object, got {_json_type(entry)}")
    name = entry.get("event")
    if name not in EVENT_SETTINGS:
        raise ValueError(f"unknown event {name!r}; expected one of {', '.join(EVENT_SETTINGS)}")
    email = entry.get("email", rows[0].to_email)
    folded = email.lower() if isinstance(email, str) else None
    row = next((r for r in rows if r.to_email.lower() == folded), None)
    if row is None:
        raise ValueError(f"{email!r} is not a recipient of message {rows[0].message_id}")
    if name == "click" and not (isinstance(entry.get("url"), str) and entry["url"]):
        raise ValueError("a click event needs the clicked 'url'")
    if name == "bounce" and entry.get("type", "bounce") not in _BOUNCE_TYPES:
        raise ValueError(f"a bounce's 'type' is 'bounce' or 'blocked', not {entry['type']!r}")
    if name in _ASM_EVENTS and entry.get("asm_group_id", asm_group_id) is None:
        raise ValueError(f"a {name} event needs an 'asm_group_id' (the mail had no asm group)")
    return row, entry


def _build_event(
    row: _ActivityRow, entry: dict[str, Any], asm_group_id: int | None, now: int
) -> dict[str, Any]:
    """One event object with the fields SendGrid sends for its type, then the entry's own.

    Custom args ride along as top-level keys, as SendGrid flattens them; SendGrid's own
    fields win over a custom arg of the same name, and the entry wins over both.
    """
    name: str = entry["event"]
    event: dict[str, Any] = dict(row.unique_args)
    event.update(
        email=row.to_email,
        timestamp=now,
        event=name,
        sg_event_id=_new_message_id(),
        sg_message_id=row.msg_id,
    )
    if row.categories:
        # v3 mail/send takes categories as an array, and the webhook echoes them as sent.
        event["category"] = list(row.categories)
    if asm_group_id is not None:
        event["asm_group_id"] = asm_group_id
    if name in _DELIVERY_EVENTS:
        event["smtp-id"] = f"<{row.message_id}@ismtpd-standin.sendgrid.net>"
    if name == "bounce":
        kind = entry.get("type", "bounce")
        event.update(_BOUNCE_DEFAULTS[kind], type=kind)
    event.update(copy.deepcopy(_EVENT_DEFAULTS.get(name, {})))
    event.update(entry)
    return event


def encode_events(events: list[dict[str, Any]]) -> bytes:
    """An event batch as SendGrid serialises it: compact, sorted keys, trailing CRLF."""
    return json.dumps(events, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\r\n"


def _post(url: str, payload: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST ``payload`` to ``url``; return the status and body, whatever the status."""
    parts = urlsplit(url)
    request_headers = dict(headers)
    if parts.username is not None:
        # SendGrid supports basic auth credentials embedded in the webhook URL.
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        request_headers["Authorization"] = f"Basic {token}"
    return loopback.post(url, payload, request_headers, timeout)


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


def _new_message_id() -> str:
    """A random 22-character URL-safe id, the shape of SendGrid's ``X-Message-Id``."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "https://sendgrid.api-docs.io",
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, On-behalf-of, x-sg-elas-acl",
    "Access-Control-Max-Age": "600",
    "X-No-CORS-Reason": "https://sendgrid.com/docs/Classroom/Basics/API/cors.html",
}

_WEBHOOK_SETTINGS_PATH = "/v3/user/webhooks/event/settings"
_SIGNED_SETTINGS_PATH = "/v3/user/webhooks/event/settings/signed"

_ERASE_PATH = "/v3/recipients/erasejob"
ERASE_ADDRESSES_MAX = 5000

_ROUTES: dict[str, frozenset[str]] = {
    "/v3/mail/send": frozenset({"POST"}),
    _ERASE_PATH: frozenset({"POST"}),
    "/v3/messages": frozenset({"GET"}),
    _WEBHOOK_SETTINGS_PATH: frozenset({"GET", "PATCH"}),
    _SIGNED_SETTINGS_PATH: frozenset({"GET", "PATCH"}),
}

# Test and demo controls, not part of SendGrid. Open when the stand-in has no control token
# (tests); with one (``nurture up``, the CLI), only for whoever holds it.
_CONTROL_PREFIX = "/_standin/"
_EMIT_PATH_RE = re.compile(r"^/_standin/messages/(?P<message_id>[^/]+)/events$")
_MAILBOX_MESSAGE_RE = re.compile(r"^/_standin/mailbox/(?P<message_id>[^/]+)$")


class _Server(loopback.StandInServer):
    standin: SendGridStandIn


class _Handler(loopback.StandInHandler):
    server_version = "nginx"
    server: _Server

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        json_type = [("Content-Type", "application/json")] if body else []
        self._respond(
            status,
            [
                *_CORS_HEADERS.items(),
                *json_type,
                ("Content-Length", str(len(body))),
                *(headers or {}).items(),
            ],
            body,
        )

    def _authorized(self) -> bool:
        """Check the Bearer key, answering 401 the way SendGrid does when it is wrong."""
        header = self.headers.get("Authorization")
        if not header:
            self._send(HTTPStatus.UNAUTHORIZED, _simple_errors_body(_AUTH_REQUIRED))
            return False
        scheme, _, token = header.partition(" ")
        token = token.strip()
        expected = self.server.standin.api_key
        # sendgrid-python sends "Bearer None" when no key is configured; SendGrid rejects it,
        # and so does the stand-in even when it accepts any key.
        if (
            scheme.lower() != "bearer"
            or token in ("", "None")
            or (expected is not None and token != expected)
        ):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                _errors_body([{"message": _INVALID_GRANT, "field": None, "help": None}]),
            )
            return False
        return True

    # -- dispatch ------------------------------------------------------------------------

    def _control_token_given(self) -> bool:
        """True when the stand-in has no control token, or the request carries it (header,
        or ``?token=`` for the mailbox pages a browser opens); else answer 401."""
        if self._control_token_ok(urlsplit(self.path).query):
            return True
        self._send(
            HTTPStatus.UNAUTHORIZED,
            _simple_errors_body(
                f"this stand-in control needs its token: the {CONTROL_TOKEN_HEADER} header or "
                "?token= (nurture up keeps it in <data dir>/sendgrid-standin.token)"
            ),
        )
        return False

    def _mailbox(self, path: str) -> None:
        standin = self.server.standin
        token = standin.control_token
        if path == MAILBOX_PATH:
            self._send_page(HTTPStatus.OK, mailbox_page(standin.messages, token))
            return
        match = _MAILBOX_MESSAGE_RE.match(path)
        message = standin._find_message(unquote(match.group("message_id"))) if match else None
        if message is None:
            self._send_page(HTTPStatus.NOT_FOUND, not_found_page(token))
            return
        self._send_page(HTTPStatus.OK, message_page(message, token))

    def _send_page(self, status: int, page: bytes) -> None:
        self._respond(status, {**PAGE_HEADERS, "Content-Length": str(len(page))}.items(), page)

    def _dispatch(self) -> None:
        raw, length = self._read_body(MAX_REQUEST_BYTES)
        path = urlsplit(self.path).path
        if path.startswith(_CONTROL_PREFIX) and not self._control_token_given():
            return
        if path == MAILBOX_PATH or path.startswith(MAILBOX_PATH + "/"):
            if self.command not in ("GET", "HEAD"):
                self._send(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    _simple_errors_body("method not allowed"),
                    {"Allow": "GET, HEAD"},
                )
                return
            self._mailbox(path)
            return
        emit = _EMIT_PATH_RE.match(path)
        if emit is not None:
            if self.command != "POST":
                self._send(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    _simple_errors_body("method not allowed"),
                    {"Allow": "POST"},
                )
                return
            self._emit(unquote(emit.group("message_id")), raw)
            return
        allowed = _ROUTES.get(path)
        if allowed is None:
            self._send(HTTPStatus.NOT_FOUND, _simple_errors_body("resource not found"))
            return
        if self.command not in allowed:
            self._send(
                HTTPStatus.METHOD_NOT_ALLOWED,
                _simple_errors_body("method not allowed"),
                {"Allow": ", ".join(sorted(allowed))},
            )
            return
        if not self._authorized():
            return
        if path == "/v3/mail/send":
            self._mail_send(raw, length)
        elif path == "/v3/messages":
            self._activity()
        elif path == _ERASE_PATH:
            self._erase(raw)
        elif path == _WEBHOOK_SETTINGS_PATH:
            self._webhook_settings(raw)
        else:
            self._signed_settings(raw)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    # -- POST /v3/mail/send --------------------------------------------------------------

    def _mail_send(self, raw: bytes, length: int) -> None:
        standin = self.server.standin
        if length > MAX_REQUEST_BYTES:
            self._send(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                _errors_body(
                    [
                        _error(
                            "The JSON payload you have included in your request is too large. "
                            "The total message size is limited to 30MB.",
                            None,
                        )
                    ]
                ),
            )
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._send(HTTPStatus.BAD_REQUEST, _errors_body([_error("Bad Request", None)]))
            return
        errors = validate_mail_send(body)
        if errors:
            self._send(HTTPStatus.BAD_REQUEST, _errors_body(errors))
            return
        fault = standin._take_fault(body)
        if fault is not None and fault.status is not None:
            self._send_fault(fault.status)
            return
        message_id = _new_message_id()
        standin._record(message_id, body)
        if fault is not None and fault.delay is not None and standin._hold(fault.delay):
            # The stand-in is stopping: drop the connection without an answer, as a
            # provider that accepted the mail and then lost the client would look.
            self.close_connection = True
            return
        self._send(HTTPStatus.ACCEPTED, b"", {"X-Message-Id": message_id})

    def _send_fault(self, status: int) -> None:
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            reset = int(time.time()) + 1
            self._send(
                status,
                _simple_errors_body("too many requests"),
                {
                    "X-RateLimit-Limit": str(RATE_LIMIT_PER_WINDOW),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(reset),
                },
            )
            return
        if status == HTTPStatus.UNAUTHORIZED:
            body = _errors_body([{"message": _INVALID_GRANT, "field": None, "help": None}])
        else:
            message = _ERROR_CLASS_MESSAGES.get(status)
            if message is None:
                try:
                    message = HTTPStatus(status).phrase.lower()
                except ValueError:
                    message = "error"
            body = _simple_errors_body(message)
        self._send(status, body)

    # -- GET /v3/messages ----------------------------------------------------------------

    def _activity(self) -> None:
        params = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        limit_raw = (params.get("limit") or ["10"])[-1]
        try:
            limit = int(limit_raw)
        except ValueError:
            limit = -1
        if not 1 <= limit <= 1000:
            self._send(
                HTTPStatus.BAD_REQUEST,
                _simple_errors_body("limit should be an integer between 1 and 1000", "limit"),
            )
            return
        query = (params.get("query") or [""])[-1].strip()
        try:
            predicate = parse_activity_query(query) if query else None
        except ActivityQueryError as exc:
            self._send(
                HTTPStatus.BAD_REQUEST, _simple_errors_body(f"invalid query: {exc}", "query")
            )
            return
        rows = [
            row.as_json()
            for row in self.server.standin._activity_newest_first()
            if predicate is None or predicate(row)
        ][:limit]
        self._send(HTTPStatus.OK, json.dumps({"messages": rows}).encode("utf-8"))

    # -- POST /v3/recipients/erasejob ---------------------------------------------------

    def _erase(self, raw: bytes) -> None:
        ok, body = self._json_body(raw)
        if not ok:
            return
        addresses = body.get("email_addresses") if isinstance(body, dict) else None
        if (
            not isinstance(addresses, list)
            or not 1 <= len(addresses) <= ERASE_ADDRESSES_MAX
            or not all(isinstance(a, str) for a in addresses)
        ):
            message = f"email_addresses must be a list of 1 to {ERASE_ADDRESSES_MAX} strings"
            self._send(HTTPStatus.BAD_REQUEST, _simple_errors_body(message, "email_addresses"))
            return
        job_id = str(uuid.uuid4())
        self.server.standin._erase_recipients(job_id, addresses)
        self._send(HTTPStatus.ACCEPTED, json.dumps({"job_id": job_id}).encode("utf-8"))

    # -- /v3/user/webhooks/event/settings[/signed] ---------------------------------------

    def _json_body(self, raw: bytes) -> tuple[bool, Any]:
        """Parse a JSON request body; on failure answer 400 and return ``(False, None)``."""
        try:
            return True, json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._send(HTTPStatus.BAD_REQUEST, _simple_errors_body("Bad Request"))
            return False, None

    def _webhook_settings(self, raw: bytes) -> None:
        standin = self.server.standin
        if self.command == "PATCH":
            ok, body = self._json_body(raw)
            if not ok:
                return
            errors = validate_webhook_settings(body)
            if errors:
                self._send(HTTPStatus.BAD_REQUEST, _errors_body(errors))
                return
            standin._patch_webhook(body)
        settings = standin.event_webhook_settings
        self._send(HTTPStatus.OK, json.dumps(settings).encode("utf-8"))

    def _signed_settings(self, raw: bytes) -> None:
        standin = self.server.standin
        if self.command == "PATCH":
            ok, body = self._json_body(raw)
            if not ok:
                return
            enabled = body.get("enabled") if isinstance(body, dict) else None
            if not isinstance(enabled, bool):
                message = f"Invalid type. Expected: boolean, given: {_json_type(enabled)}."
                self._send(HTTPStatus.BAD_REQUEST, _simple_errors_body(message, "enabled"))
                return
            standin._set_signed(enabled)
        self._send(HTTPStatus.OK, json.dumps(standin._signed_json()).encode("utf-8"))

    # -- POST /_standin/messages/<id>/events (test control) ------------------------------

    def _emit(self, message_id: str, raw: bytes) -> None:
        standin = self.server.standin
        ok, entries = self._json_body(raw)
        if not ok:
            return
        if not standin._has_message(message_id):
            self._send(HTTPStatus.NOT_FOUND, _simple_errors_body("message not found"))
            return
        if not isinstance(entries, list):
            message = f"Invalid type. Expected: array, given: {_json_type(entries)}."
            self._send(HTTPStatus.BAD_REQUEST, _simple_errors_body(message))
            return
        try:
            delivery = standin.emit_events(message_id, entries)
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, _simple_errors_body(str(exc)))
            return
        except EventWebhookDeliveryError as exc:
            self._send(HTTPStatus.BAD_GATEWAY, _simple_errors_body(str(exc)))
            return
        except EventWebhookError as exc:
            self._send(HTTPStatus.CONFLICT, _simple_errors_body(str(exc)))
            return
        answer = {
            "url": delivery.url,
            "status": delivery.status,
            "response_body": delivery.response_body.decode("utf-8", "replace"),
            "timestamp": delivery.timestamp,
            "signature": delivery.signature,
            "events": delivery.events,
        }
        self._send(HTTPStatus.OK, json.dumps(answer).encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Public stand-in
# --------------------------------------------------------------------------------------------


def _iter_recipients(personalization: dict[str, Any]) -> Iterator[str]:
    for kind in ("to", "cc", "bcc"):
        for item in personalization.get(kind) or []:
            yield item["email"]


def _asm_group_id(body: dict[str, Any]) -> int | None:
    """The unsubscribe group of a mail/send body (``asm.group_id``), if it has one."""
    asm = body.get("asm")
    group_id = asm.get("group_id") if isinstance(asm, dict) else None
    return group_id if isinstance(group_id, int) and not isinstance(group_id, bool) else None


@dataclass
class _State:
    messages: list[RecordedMessage] = field(default_factory=list)
    activity: list[_ActivityRow] = field(default_factory=list)
    faults: deque[SendFault] = field(default_factory=deque)
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    erasure_jobs: list[str] = field(default_factory=list)


class SendGridStandIn(loopback.LoopbackStandIn):
    """SendGrid's v3 mail/send, Email Activity and Event Webhook on loopback, with faults.

    ``api_key=None`` accepts any non-empty Bearer token (except ``None``, which is what
    sendgrid-python sends when it has no key); a string accepts only that exact key.
    Use as a context manager, or call :meth:`start` / :meth:`stop`. All methods are
    thread-safe; the server runs in a background daemon thread. :attr:`url` is the base URL
    to pass as ``host=`` to ``SendGridAPIClient``.

    Each instance has its own ECDSA P-256 key pair; the Event Webhook starts with no URL
    (disabled), every event type switched on and signature verification on.
    """

    server_class = _Server
    handler_class = _Handler
    thread_name = "sendgrid-standin"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        control_token: str | None = None,
    ) -> None:
        super().__init__(host, port, control_token)
        self.api_key = api_key
        self.accepted_event = threading.Event()
        """Set each time a message is recorded; only :meth:`clear` clears it."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._state = _State()
        self._seq = 0
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        spki = self._signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._public_key = base64.b64encode(spki).decode("ascii")
        self._webhook = _WebhookSettings()
        self._fault_rule: FaultRule | None = None

    # -- recorded traffic ----------------------------------------------------------------

    @property
    def mailbox_url(self) -> str:
        """The mailbox page (with the control token, if any): what was sent, readable."""
        return f"{self.url}{mailbox_path(self.control_token)}"

    @property
    def messages(self) -> list[RecordedMessage]:
        """A snapshot of the accepted messages, in arrival order."""
        with self._lock:
            return list(self._state.messages)

    def messages_with(self, **custom_args: str) -> list[RecordedMessage]:
        """The accepted messages whose merged custom_args contain all the given pairs."""
        return [
            m
            for m in self.messages
            if all(m.custom_args.get(key) == value for key, value in custom_args.items())
        ]

    @property
    def erasure_jobs(self) -> list[str]:
        """The ids of the erasure jobs received (``POST /v3/recipients/erasejob``)."""
        with self._lock:
            return list(self._state.erasure_jobs)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` messages are recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._state.messages) >= count, timeout)

    def clear(self) -> None:
        """Forget messages, activity, pending faults and webhook deliveries.

        Also clears ``accepted_event``. The Event Webhook settings and the key pair stay:
        they are account configuration, not traffic.
        """
        with self._lock:
            self._state = _State()
            self.accepted_event.clear()

    # -- fault injection -----------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` valid sends with ``status``, recording nothing.

        429 carries SendGrid's rate-limit headers; other statuses a SendGrid-shaped errors
        body. Faults queue in call order together with :meth:`delay_after_accept`.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next needs a 4xx or 5xx status, got {status}")
        self._queue(SendFault(status=status), count)

    def delay_after_accept(self, seconds: float, count: int = 1) -> None:
        """Record the next ``count`` valid sends, then hold each 202 for ``seconds``.

        Simulates a client that dies (times out) after SendGrid accepted the mail.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._queue(SendFault(delay=seconds), count)

    def set_fault_rule(self, rule: FaultRule | None) -> None:
        """Let ``rule(custom_args)`` decide the fault of every valid send that finds no queued
        one (:meth:`fail_next`, :meth:`delay_after_accept` go first); ``None`` removes it.

        ``custom_args`` are the send's merged custom_args, so a rule can keep its faults per
        message (e.g. by idempotency key and attempt, seeded: reproducible whatever order
        concurrent sends arrive in). It runs on the server's threads: quick, thread-safe and
        not raising. :meth:`clear` leaves it in place.
        """
        with self._lock:
            self._fault_rule = rule

    def _queue(self, fault: SendFault, count: int) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._state.faults.extend([fault] * count)

    # -- Event Webhook -------------------------------------------------------------------

    @property
    def webhook_public_key(self) -> str:
        """The verification key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo.

        ``sendgrid.helpers.eventwebhook.EventWebhook().convert_public_key_to_ecdsa`` takes it
        as is.
        """
        return self._public_key

    @property
    def event_webhook_settings(self) -> dict[str, Any]:
        """The settings as ``GET /v3/user/webhooks/event/settings`` answers them."""
        with self._lock:
            return self._webhook.as_json(self._public_key)

    def set_event_webhook(self, url: str | None, *, signed: bool | None = None) -> None:
        """Deliver events to ``url`` (enabling the webhook), or disable it with ``None``.

        ``signed=False`` switches signature verification off (posts then carry no signature
        headers and the signed-settings endpoint shows an empty key, as SendGrid does);
        ``True`` switches it back on; ``None`` leaves it as it is (on, initially).
        """
        if url is not None and not _is_webhook_url(url):
            raise ValueError(f"{url!r} is not a valid url (absolute http or https)")
        with self._lock:
            self._webhook.enabled = url is not None
            self._webhook.url = url or ""
            if signed is not None:
                self._webhook.signed = signed

    def sign(self, payload: bytes, timestamp: str) -> str:
        """SendGrid's Event Webhook signature: base64 DER ECDSA/SHA-256 of timestamp + payload."""
        signature = self._signing_key.sign(
            timestamp.encode("utf-8") + payload, ec.ECDSA(hashes.SHA256())
        )
        return base64.b64encode(signature).decode("ascii")

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """A snapshot of the batches :meth:`emit_events` built, oldest first."""
        with self._lock:
            return list(self._state.deliveries)

    def emit_events(
        self, message_id: str, events: list[dict[str, Any]], *, timeout: float = 10.0
    ) -> WebhookDelivery:
        """Post SendGrid events about an accepted message to the webhook, as one signed batch.

        ``message_id`` is the ``X-Message-Id`` mail/send answered. Each entry names an
        ``event`` (processed, delivered, deferred, bounce, dropped, open, click, spamreport,
        unsubscribe, group_unsubscribe, group_resubscribe) and may add or override any field,
        e.g. ``{"event": "click", "url": "https://x/pricing"}`` (a click needs its ``url``),
        ``{"event": "bounce", "type": "blocked"}``, ``{"event": "open", "sg_event_id": "x"}``
        for a duplicate, or ``{"email": ...}`` for a recipient other than the first.

        Raises ``ValueError`` for an unknown message or a bad entry, :class:`EventWebhookError`
        when no webhook URL is set, and :class:`EventWebhookDeliveryError` when the URL cannot
        be reached. A receiver's error status is no exception: it is in the returned delivery.
        """
        with self._lock:
            message = self._find_message(message_id)
            rows = [r for r in self._state.activity if r.message_id == message_id]
            settings = self._webhook.snapshot()
        if message is None or not rows:
            raise ValueError(f"no accepted message has X-Message-Id {message_id!r}")
        if not events:
            raise ValueError("emit_events needs at least one event")
        asm_group_id = _asm_group_id(message.body)
        checked = [_check_entry(entry, rows, asm_group_id) for entry in events]
        if not settings.enabled or not settings.url:
            raise EventWebhookError(
                "no Event Webhook URL is configured; call set_event_webhook(url) or "
                "PATCH /v3/user/webhooks/event/settings first"
            )
        now = int(time.time())
        built = [_build_event(row, entry, asm_group_id, now) for row, entry in checked]
        posted = [e for e in built if settings.flags[EVENT_SETTINGS[e["event"]]]]
        delivery = self._deliver(settings, posted, timeout)
        with self._lock:
            self._state.deliveries.append(delivery)
        return delivery

    def _deliver(
        self, settings: _WebhookSettings, events: list[dict[str, Any]], timeout: float
    ) -> WebhookDelivery:
        timestamp = str(int(time.time()))
        if not events:
            return WebhookDelivery(settings.url, None, b"", [], b"", timestamp, None, {})
        payload = encode_events(events)
        signature = self.sign(payload, timestamp) if settings.signed else None
        headers = {"Content-Type": "application/json", "User-Agent": EVENT_WEBHOOK_USER_AGENT}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
            headers[TIMESTAMP_HEADER] = timestamp
        try:
            status, body = _post(settings.url, payload, headers, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise EventWebhookDeliveryError(
                f"could not post events to {settings.url}: {exc}"
            ) from exc
        return WebhookDelivery(
            url=settings.url,
            status=status,
            response_body=body,
            events=events,
            payload=payload,
            timestamp=timestamp,
            signature=signature,
            headers=headers,
        )

    # -- used by the request handler -----------------------------------------------------

    def _find_message(self, message_id: str) -> RecordedMessage | None:
        """The recorded message with this X-Message-Id; call with the lock held."""
        return next((m for m in self._state.messages if m.message_id == message_id), None)

    def _has_message(self, message_id: str) -> bool:
        with self._lock:
            return self._find_message(message_id) is not None

    def _patch_webhook(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._webhook.apply(body)

    def _set_signed(self, enabled: bool) -> None:
        with self._lock:
            self._webhook.signed = enabled

    def _signed_json(self) -> dict[str, Any]:
        with self._lock:
            signed, webhook_id = self._webhook.signed, self._webhook.id
        return {
            "id": webhook_id,
            "enabled": signed,
            "public_key": self._public_key if signed else "",
        }

    def _take_fault(self, body: dict[str, Any]) -> SendFault | None:
        with self._lock:
            if self._state.faults:
                return self._state.faults.popleft()
            rule = self._fault_rule
        if rule is None:
            return None
        args: dict[str, str] = dict(body.get("custom_args") or {})
        for personalization in body["personalizations"]:
            args.update(personalization.get("custom_args") or {})
        return rule(args)

    def _activity_newest_first(self) -> list[_ActivityRow]:
        with self._lock:
            return list(reversed(self._state.activity))

    def _erase_recipients(self, job_id: str, addresses: list[str]) -> None:
        erased = {a.strip().lower() for a in addresses}
        with self._changed:
            state = self._state
            state.messages = [m for m in state.messages if not erased & {to.lower() for to in m.to}]
            state.activity = [r for r in state.activity if r.to_email.lower() not in erased]
            state.erasure_jobs.append(job_id)
            self._changed.notify_all()

    def _record(self, message_id: str, body: dict[str, Any]) -> RecordedMessage:
        now = datetime.now(UTC)
        personalizations: list[dict[str, Any]] = body["personalizations"]
        top_args: dict[str, str] = dict(body.get("custom_args") or {})
        merged_args = dict(top_args)
        headers: dict[str, str] = dict(body.get("headers") or {})
        recipients: list[str] = []
        for p in personalizations:
            merged_args.update(p.get("custom_args") or {})
            headers.update(p.get("headers") or {})
            recipients.extend(_iter_recipients(p))
        subject = body.get("subject") or personalizations[0].get("subject") or ""
        categories = [str(c) for c in body.get("categories") or []]
        message = RecordedMessage(
            message_id=message_id,
            received_at=now,
            from_email=body["from"]["email"],
            to=recipients,
            subject=subject,
            contents={c["type"]: c["value"] for c in body.get("content") or []},
            custom_args=merged_args,
            headers=headers,
            categories=categories,
            body=body,
        )
        event_time = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._changed:
            self._seq += 1
            rows: list[_ActivityRow] = []
            n = 0
            for p in personalizations:
                args = {**top_args, **(p.get("custom_args") or {})}
                for address in _iter_recipients(p):
                    rows.append(
                        _ActivityRow(
                            # SendGrid's activity msg_id is the X-Message-Id plus a suffix
                            # naming the filter node and the recipient.
                            msg_id=f"{message_id}.filterdrecv-standin-{self._seq}-{n}.0",
                            message_id=message_id,
                            from_email=message.from_email,
                            to_email=address,
                            subject=p.get("subject") or subject,
                            unique_args=args,
                            categories=tuple(categories),
                            template_id=body.get("template_id") or "",
                            last_event_time=event_time,
                        )
                    )
                    n += 1
            self._state.messages.append(message)
            self._state.activity.extend(rows)
            self.accepted_event.set()
            self._changed.notify_all()
        return message


# --------------------------------------------------------------------------------------------
# python -m nurture.standins.sendgrid_standin
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = standin_cli.standin_parser(
        "nurture.standins.sendgrid_standin",
        "Serve a local stand-in for SendGrid's v3 API (mail/send, messages).",
        port=3030,
    )
    parser.add_argument(
        "--api-key", default=None, help="accept only this key (default: any non-empty key)"
    )
    standin_cli.add_control_token(parser, "controls")
    args = parser.parse_args(argv)
    token = standin_cli.control_token(args)
    standin = SendGridStandIn(
        host=args.host, port=args.port, api_key=args.api_key, control_token=token
    )
    return standin_cli.serve_until_stopped(
        standin,
        "SendGrid stand-in",
        f"{args.host}:{args.port}",
        lambda: f"{len(standin.messages)} message(s) accepted",
        notes=lambda: [
            f"Mailbox: {standin.mailbox_url}",
            f"Controls need the header {CONTROL_TOKEN_HEADER}: {token}",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
