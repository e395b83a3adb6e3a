"""What changed between two rules versions, in words a marketer reads:
``scoring.sales_ready_threshold: 100 → 110``, ``cadence.enterprise.steps.security.delay:
5d → 7d``, ``template enterprise/04_security.html changed``.

A version is kept as a *snapshot*: every setting of the rules flattened to a path and its
value as text (a cadence or step found by its id or name, not its position, so inserting a
step names that step instead of shifting every later one), and a digest of each template file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import time, timedelta
from typing import Any

from pydantic import BaseModel

from nurture.domain.durations import format_duration
from nurture.domain.rules import Rules

TEMPLATE_PREFIX = "template "
THRESHOLD = "scoring.sales_ready_threshold"


def rules_snapshot(rules: Rules, template_sources: Mapping[str, str]) -> dict[str, str]:
    """Every setting of ``rules`` as ``path -> value``, and ``template NAME -> digest``."""
    flat: dict[str, str] = {}
    plain = _plain(rules)
    winners = plain.pop("winners", {})
    book = plain.pop("cadences")
    plain["cadence"] = {c["id"]: c for c in book.pop("cadences")}  # "cadence smb.steps…"
    plain["cadences"] = book  # the book's own settings: sender, send window, cap…
    _flatten({k: v for k, v in plain.items() if k != "version"}, "", flat)
    for key, decided in winners.items():  # a winner rule's decision: beside the rule
        cadence, step = key.split("/", 1)
        flat[f"cadence.{cadence}.steps.{step}.decided_winner"] = (
            f"{decided['variant']} ({decided['because']})"
        )
    for name, source in sorted(template_sources.items()):
        flat[TEMPLATE_PREFIX + name] = hashlib.sha256(source.encode()).hexdigest()[:16]
    return flat


def describe_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """One line per setting added, removed or changed, in path order."""
    lines = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if path.startswith(TEMPLATE_PREFIX):
            what = "added" if old is None else "removed" if new is None else "changed"
            lines.append(f"{path} {what}")
        elif old is None:
            lines.append(f"{path}: added ({new})")
        elif new is None:
            lines.append(f"{path}: removed (was {old})")
        else:
            lines.append(f"{path}: {old} → {new}")
    return lines


def threshold_of(snapshot: Mapping[str, str]) -> int | None:
    value = snapshot.get(THRESHOLD)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _plain(value: Any) -> Any:
    """The model's values as they are (durations as ``timedelta``: a dump would give their
    serialised seconds), in dicts and lists."""
    if isinstance(value, BaseModel):
        # A setting left out of the rules' JSON while unused (A/B variants…) is left out here
        # too: versions from before it existed say nothing of it.
        return {
            name: _plain(getattr(value, name))
            for name, field in type(value).model_fields.items()
            if field.exclude_if is None or not field.exclude_if(getattr(value, name))
        }
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _flatten(value: Any, path: str, into: dict[str, str]) -> None:
    if isinstance(value, dict):
        if not value:
            into[path] = "{}"
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), into)
    elif isinstance(value, list | tuple):
        keyed = all(isinstance(v, dict) and ("id" in v or "name" in v) for v in value)
        if keyed and value:
            for item in value:
                _flatten(item, f"{path}.{item.get('id', item.get('name'))}", into)
        else:
            into[path] = "[" + ", ".join(_text(v) for v in value) + "]"
    else:
        into[path] = _text(value)


def _text(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return "none"
    return str(value)
