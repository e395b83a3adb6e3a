"""``config/forms.yaml``: the website's forms (docs/tracking.md, "Forms"), owned by marketers.

Each form maps the names of its HTML fields to profile fields, names its consent checkbox and
the wording the person was shown, its honeypot field and its thank-you page. The HTTP service
reads the file again when it changes on disk; a broken edit is refused (logged, and recorded
for ``nurture config status``) and the last good version stays in force, as with the rules.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import Engine

from nurture.config.config_loader import ConfigError, describe_in_file, read_settings_file
from nurture.config.file_watch import ChangeWatch
from nurture.config.tracking_settings import load_tracking_settings
from nurture.domain.leads import (
    CONSENT_TEXT_MAX,
    CONSENT_VERSION_PATTERN,
    CUSTOM_KEY_PATTERN,
    EVENT_TYPE_PATTERN,
    PROFILE_FIELDS,
    check_plain_text,
)

log = structlog.get_logger(__name__)

FORMS_FILE = "forms.yaml"
FORM_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
FIELD_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:\[\]-]{0,99}$"
"""An HTML input's ``name`` as forms use them: ``email``, ``first-name``, ``lead[company]``."""
VISITOR_FIELD = "_nv"
"""The hidden input the tracker adds to a form: the visitor id (never a profile field)."""
CUSTOM_PREFIX = "custom."
FORM_FILL = "form_fill"


def profile_field_problem(target: str) -> str | None:
    """Why ``target`` is not a profile field a form may fill (None: it is one)."""
    if target in PROFILE_FIELDS:
        return None
    if target.startswith(CUSTOM_PREFIX):
        if re.fullmatch(CUSTOM_KEY_PATTERN, target.removeprefix(CUSTOM_PREFIX)):
            return None
        return (
            f"{target!r}: a custom field's name is 1 to 64 letters, digits, '_' or '-' "
            "(first not '-'), e.g. custom.interest"
        )
    known = ", ".join(PROFILE_FIELDS)
    return f"{target!r} is not a profile field: use one of {known}, or custom.<name>"


class FormConsent(BaseModel):
    """The consent checkbox: ticked, the lead gets a consent record with this wording."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(pattern=FIELD_NAME_PATTERN, description="the checkbox's name")
    text: str = Field(
        min_length=1,
        max_length=CONSENT_TEXT_MAX,
        description="what the person was shown beside the box, word for word",
    )
    version: str | None = Field(
        default=None, pattern=CONSENT_VERSION_PATTERN, description="e.g. contact-2026-12"
    )

    @field_validator("text")
    @classmethod
    def _plain(cls, value: str) -> str:
        return check_plain_text(value)


class WebForm(BaseModel):
    """One form of the website: ``POST /f/{site_key}/{name}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="a slug: contact, newsletter")
    fields: dict[str, str] = Field(
        description="the form's field name -> a profile field (email, first_name, …, custom.<name>)"
    )
    required: list[str] = Field(default_factory=list)
    consent: FormConsent | None = None
    honeypot: str | None = Field(default=None, pattern=FIELD_NAME_PATTERN)
    thank_you: str = Field(description="an absolute URL, or a path on the posting page's site")
    event: str = Field(default=FORM_FILL, pattern=EVENT_TYPE_PATTERN)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(FORM_NAME_PATTERN, value):
            raise ValueError("1 to 64 lower-case letters, digits, '-' or '_', e.g. contact")
        return value

    @field_validator("fields")
    @classmethod
    def _mapped_to_profile_fields(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for name, target in value.items():
            if not re.fullmatch(FIELD_NAME_PATTERN, name) or name == VISITOR_FIELD:
                problems.append(
                    f"field name {name!r}: 1 to 100 letters, digits, '_', '-', '.', ':', "
                    f"'[' or ']' (and not {VISITOR_FIELD!r}, the tracker's)"
                )
            elif problem := profile_field_problem(target):
                problems.append(f"field {name!r}: {problem}")
        if problems:
            raise ValueError("; ".join(problems))
        doubled = sorted({t for t in value.values() if list(value.values()).count(t) > 1})
        if doubled:
            raise ValueError(f"two form fields fill the same profile field: {', '.join(doubled)}")
        if "email" not in value.values():
            raise ValueError(
                "no field fills 'email': a form creates or updates the lead holding the "
                "address given, e.g. fields: {email: email}"
            )
        return value

    @field_validator("thank_you")
    @classmethod
    def _url_or_path(cls, value: str) -> str:
        parts = urlsplit(value)
        if value.startswith("/") and not value.startswith("//"):
            return value
        if parts.scheme in ("http", "https") and parts.netloc:
            return value
        raise ValueError(
            "an absolute URL (https://www.example.com/thanks) or a path on the page's own "
            "site (/thanks)"
        )

    @model_validator(mode="after")
    def _names_agree(self) -> WebForm:
        consent = self.consent.field if self.consent else None
        if consent in self.fields:
            raise ValueError(f"consent field {consent!r} is also in fields: name it once")
        if self.honeypot is not None and self.honeypot in {*self.fields, consent}:
            raise ValueError(f"honeypot {self.honeypot!r} is also a field the form uses")
        unknown = [name for name in self.required if name not in {*self.fields, consent}]
        if unknown:
            raise ValueError(
                f"required names {', '.join(map(repr, unknown))}, not in fields"
                + (" nor the consent field" if consent else "")
            )
        return self

    @property
    def email_field(self) -> str:
        return next(name for name, target in self.fields.items() if target == "email")

    def is_required(self, name: str) -> bool:
        """The email's field always is: without an address there is no lead to update."""
        return name in self.required or name == self.email_field

    def thank_you_url(self, origin: str) -> str:
        """Where the person goes next; a path is on the site the form was posted from."""
        return self.thank_you if not self.thank_you.startswith("/") else origin + self.thank_you


class FormBook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    forms: list[WebForm] = Field(default_factory=list)

    @field_validator("forms")
    @classmethod
    def _names_once(cls, value: list[WebForm]) -> list[WebForm]:
        names = [form.name for form in value]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"form names must be unique: {', '.join(doubled)}")
        return value

    def form(self, name: str) -> WebForm | None:
        return next((form for form in self.forms if form.name == name), None)


def load_forms(config_dir: Path) -> FormBook:
    """The forms of ``config_dir/forms.yaml`` (none when it is missing); :class:`ConfigError`
    naming file:line and key of every problem."""
    return read_settings_file(config_dir / FORMS_FILE, FormBook)


def unscored_events(config_dir: Path, book: FormBook, known: set[str]) -> list[str]:
    """Forms whose ``event`` scoring.yaml does not list (it would be recorded, never scored)."""
    path = config_dir / FORMS_FILE
    return [
        describe_in_file(
            path,
            ("forms", index, "event"),
            f"{form.event!r} is not an event type scoring.yaml lists under behaviours",
        )
        for index, form in enumerate(book.forms)
        if form.event not in known
    ]


@dataclass(frozen=True)
class WebsiteFiles:
    """What ``nurture config check`` found in the website's files (forms.yaml, tracking.yaml)."""

    forms: FormBook | None
    problems: list[str]


def check_website_files(config_dir: Path, known_events: set[str] | None) -> WebsiteFiles:
    """Every problem of forms.yaml and tracking.yaml (``known_events``: the scoring rules'
    event types, when they loaded)."""
    problems: list[str] = []
    book: FormBook | None = None
    try:
        book = load_forms(config_dir)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if book is not None and known_events is not None:
        problems.extend(unscored_events(config_dir, book, known_events))
    try:
        load_tracking_settings(config_dir)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return WebsiteFiles(book, problems)


FORMS_STATUS_ROW = "forms"
"""The row of ``nurture config status`` the HTTP service records forms.yaml's state in."""


class FormsSource:
    """The forms as ``forms.yaml`` says now; the last good version if an edit broke it.

    Read at start (a broken file stops the service, as broken rules stop a worker), then again
    when the file's modification time changes, looked at most every ``recheck_every``
    seconds."""

    def __init__(self, config_dir: Path, recheck_every: float = 1.0) -> None:
        self.config_dir = config_dir
        self.path = config_dir / FORMS_FILE
        self._lock = threading.Lock()
        self._watch = ChangeWatch(self._mtime, recheck_every)
        self._book = load_forms(config_dir)
        self.version = self._digest()
        self.loaded_at = datetime.now(UTC)
        self._status: Engine | None = None

    def current(self) -> FormBook:
        with self._lock:
            if self._watch.changed():
                self._reload()
            return self._book

    def _reload(self) -> None:
        try:
            fresh = load_forms(self.config_dir)
        except ConfigError as exc:
            log.error(
                "forms.yaml edit rejected; keeping the last good forms",
                version=self.version,
                problems=exc.problems,
            )
            self._record(rejected=exc.problems)
            return
        self._book, self.version, self.loaded_at = fresh, self._digest(), datetime.now(UTC)
        log.info("forms reloaded", version=self.version, forms=[f.name for f in fresh.forms])
        self._record()

    def _mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return None

    def _digest(self) -> str:
        text = self.path.read_bytes() if self.path.exists() else b""
        return hashlib.sha256(text).hexdigest()[:12]

    def record_status_in(self, engine: Engine) -> None:
        """Record the version in force (now and at every change) and every refused edit for
        ``nurture config status``."""
        with self._lock:
            self._status = engine
            self._record()

    def _record(self, rejected: list[str] | None = None) -> None:
        if self._status is None:
            return
        from nurture.store.rules_status import InForce, record_status

        in_force = InForce(FORMS_STATUS_ROW, self.version, self.loaded_at, str(self.config_dir))
        record_status(self._status, in_force, rejected)
