"""What a website form post says, read by its form's definition (``config/forms.yaml``): the
profile fields it fills, whether its consent box is ticked, and every bad field named as the
form names it. No HTTP and no Temporal here: ``forms_api`` does those."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from nurture.config.forms import CUSTOM_PREFIX, WebForm
from nurture.domain.leads import LeadProfile
from nurture.domain.visits import PENDING_LEAD

FormValues = Mapping[str, Sequence[object]]
"""Each name the post carries, with its values: text from a plain post; the tracker's JSON
may carry other types, refused for a field the form maps."""

NOT_TICKED = frozenset({"", "0", "false", "off", "no"})
"""What a checkbox's value means unticked (the tracker's copy of a form may send false)."""

FRIENDLY: dict[str, str] = {
    "int_parsing": "expected a whole number, e.g. 250",
    "int_from_float": "expected a whole number, e.g. 250",
    "float_parsing": "expected a number, e.g. 25000",
    "greater_than_equal": "expected 0 or more",
}
"""pydantic's words for what a form's person typed, said for that person."""
PHONE = "expected a phone number: 4 to 40 digits, spaces and + ( ) . / -"


@dataclass(frozen=True)
class FieldProblem:
    field: str
    """the FORM's name for it (what the page's author wrote in ``name=``)"""
    msg: str


@dataclass(frozen=True)
class FormFields:
    """A post's good fields: what ``LeadProfile.from_edge`` takes (without ``lead_id`` and
    consent), only the fields filled in."""

    profile: dict[str, Any]
    consent_ticked: bool


def honeypot_filled(form: WebForm, values: FormValues) -> bool:
    if form.honeypot is None:
        return False
    return any(not isinstance(v, str) or v.strip() for v in values.get(form.honeypot, ()))


def read_form(form: WebForm, values: FormValues) -> FormFields | list[FieldProblem]:
    """The post's profile fields and consent, or every field that is bad (each once, in the
    form's order). Names the form does not map are ignored."""
    problems: list[FieldProblem] = []
    profile: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for name, target in form.fields.items():
        value = _one_value(form, name, values.get(name, ()), problems)
        if value is None:
            continue
        problem = profile_value_problem(target, value)
        if problem is not None:
            problems.append(FieldProblem(name, problem))
        elif target.startswith(CUSTOM_PREFIX):
            custom[target.removeprefix(CUSTOM_PREFIX)] = value
        else:
            profile[target] = value
    ticked = False
    if form.consent is not None:
        box = form.consent.field
        given = values.get(box, ())
        ticked = any(
            v is True or (isinstance(v, str) and v.strip().lower() not in NOT_TICKED) for v in given
        )
        if not ticked and form.is_required(box):
            problems.append(FieldProblem(box, "required: tick this box to agree"))
    if problems:
        return problems
    if custom:
        profile["custom"] = custom
    return FormFields(profile=profile, consent_ticked=ticked)


def _one_value(
    form: WebForm, name: str, given: Sequence[object], problems: list[FieldProblem]
) -> str | None:
    """The field's one value, stripped (None: not filled in, or a problem noted)."""
    if any(not isinstance(v, str) for v in given):
        problems.append(FieldProblem(name, "expected text"))
        return None
    filled = [v.strip() for v in given if isinstance(v, str) and v.strip()]
    if len(filled) > 1:
        problems.append(FieldProblem(name, f"expected one value, got {len(filled)}"))
        return None
    if not filled:
        if form.is_required(name):
            problems.append(FieldProblem(name, "required: fill this in"))
        return None
    return filled[0]


def profile_value_problem(target: str, value: str) -> str | None:
    """Why a lead cannot take ``value`` as its ``target`` field (the edge rules of
    ``/api/leads``), in words for the person who typed it; None when it can."""
    custom = target.removeprefix(CUSTOM_PREFIX) if target.startswith(CUSTOM_PREFIX) else None
    data: dict[str, Any] = {"lead_id": PENDING_LEAD}
    if custom is not None:
        data["custom"] = {custom: value}
    else:
        data[target] = value
    try:
        LeadProfile.from_edge(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] in FRIENDLY:
            return FRIENDLY[error["type"]]
        if target == "phone" and error["type"] == "string_pattern_mismatch":
            return PHONE
        message = str(error["msg"]).removeprefix("Value error, ")
        return message.removeprefix(f"custom field {custom!r}: ")
    return None


def form_event_id(site_key: str, form: str, lead_id: str, fields: FormFields, at: datetime) -> str:
    """The id of a post's event: the same for the same form sent by the same lead with the
    same fields within the same clock hour (UTC), so a double click, a browser's resend or a
    retry after a 503 counts once; a post with other fields, or an hour later, counts again.
    A digest: it shows none of the fields."""
    canonical = json.dumps(
        [
            site_key,
            form,
            lead_id,
            fields.profile,
            fields.consent_ticked,
            at.astimezone(UTC).strftime("%Y-%m-%dT%H"),
        ],
        sort_keys=True,
        ensure_ascii=False,
    )
    return "form-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
