"""Conditions on lead profile fields, shared by segments, fit rules and routing rules.

A condition is a mapping ``field -> test``; every test must hold. A test is written as:

- a scalar: equal, case-insensitive (``region: EMEA``);
- a list: equal to any (``industry: [software, saas]``);
- a mapping with any of ``in``, ``not_in``, ``contains`` (whole words, any of), ``min``/``max``
  (numbers), ``domain_in`` (the domain of an email field), ``exists`` (true/false).

Fields are the lead profile's own (``title``, ``company_size``…) or ``custom.<name>``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

Scalar = str | int | float | bool


class FieldTest(BaseModel):
    """One field's test; see the module docstring for the YAML forms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_: list[Scalar] | None = None
    not_in: list[Scalar] | None = None
    contains: list[str] | None = None
    min: float | None = None
    max: float | None = None
    domain_in: list[str] | None = None
    exists: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str | int | float | bool):
            return {"in_": [value]}
        if isinstance(value, list):
            return {"in_": value}
        if isinstance(value, dict):
            value = dict(value)
            if "in" in value:
                value["in_"] = value.pop("in")
            for key in ("contains", "domain_in"):
                if isinstance(value.get(key), str):
                    value[key] = [value[key]]
            if not value:
                raise ValueError("an empty test matches nothing useful; give in/contains/min/…")
        return value

    def holds(self, actual: Any) -> bool:
        present = actual is not None and actual != ""
        if self.exists is not None and present != self.exists:
            return False
        if not present:
            # Only an ``exists: false`` test is satisfied by a missing value.
            return self.exists is False and self._only_exists()
        text = _norm(actual)
        if self.in_ is not None and text not in {_norm(v) for v in self.in_}:
            return False
        if self.not_in is not None and text in {_norm(v) for v in self.not_in}:
            return False
        if self.contains is not None and not any(_has_words(text, c) for c in self.contains):
            return False
        if self.min is not None or self.max is not None:
            number = _as_number(actual)
            if number is None:
                return False
            if self.min is not None and number < self.min:
                return False
            if self.max is not None and number > self.max:
                return False
        if self.domain_in is not None:
            domain = text.rsplit("@", 1)[-1]
            if not any(
                domain == d.lower() or domain.endswith("." + d.lower()) for d in self.domain_in
            ):
                return False
        return True

    def _only_exists(self) -> bool:
        return all(
            getattr(self, name) is None
            for name in ("in_", "not_in", "contains", "min", "max", "domain_in")
        )


def _has_words(text: str, words: str) -> bool:
    """Whole-word match: "cto" finds "CTO" but not "director"; "head of" finds "Head of IT"."""
    return (
        re.search(rf"(?<![a-z0-9]){re.escape(words.lower().strip())}(?![a-z0-9])", text) is not None
    )


def _norm(value: Any) -> str:
    """Case- and number-form-insensitive text: 50000.0 and 50000 compare equal."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", ""))
    except ValueError:
        return None


Condition = dict[str, FieldTest]
"""``field -> test``; all must hold. The empty condition matches every lead."""


def condition_holds(condition: Condition, fields: dict[str, Any]) -> bool:
    """True when every test of ``condition`` holds on the flattened profile ``fields``."""
    return all(test.holds(fields.get(name)) for name, test in condition.items())
