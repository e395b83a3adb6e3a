"""Read the rule files from a config directory, with errors a marketer can act on.

Every problem names the file, the key and what was expected, e.g.
``config/scoring.yaml: behaviours.page_view: expected an integer, got 'ten'``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nurture.rules import CadenceBook, EngineSettings, RoutingRules, Rules, ScoringRules
from nurture.send_window import SendWindow

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

RULE_FILES: dict[str, type[BaseModel]] = {
    "scoring.yaml": ScoringRules,
    "cadences.yaml": CadenceBook,
    "routing.yaml": RoutingRules,
}
OPTIONAL_FILES: dict[str, type[BaseModel]] = {"engine.yaml": EngineSettings}


class ConfigError(Exception):
    """The rules cannot be used; ``problems`` lists each one as ``file: key: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def config_dir_from_env(explicit: str | Path | None = None) -> Path:
    """``--config DIR`` wins, then ``NURTURE_CONFIG``, then the shipped ``config/``."""
    chosen = explicit or os.environ.get("NURTURE_CONFIG")
    return Path(chosen).expanduser().resolve() if chosen else DEFAULT_CONFIG_DIR


def templates_dir_from_env(explicit: str | Path | None = None) -> Path:
    chosen = explicit or os.environ.get("NURTURE_TEMPLATES")
    return Path(chosen).expanduser().resolve() if chosen else DEFAULT_TEMPLATES_DIR


def load_rules(
    config_dir: Path, templates_dir: Path | None = None, time_scale: float = 1.0
) -> Rules:
    """Load and validate every rule file; raise :class:`ConfigError` listing all problems.

    With ``templates_dir``, every cadence template is also rendered against sample leads, so a
    broken template stops the worker at start rather than a lead's fourth touch at 3 a.m.
    ``time_scale`` divides every duration (60 makes an hour a minute) for demos and tests.
    """
    if time_scale <= 0:
        raise ConfigError([f"time_scale must be above zero, got {time_scale}"])
    if not config_dir.is_dir():
        raise ConfigError(
            [f"{config_dir}: no such config directory (set --config or NURTURE_CONFIG)"]
        )
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    digest = hashlib.sha256()
    for filename, model in {**RULE_FILES, **OPTIONAL_FILES}.items():
        path = config_dir / filename
        if not path.exists():
            if filename in RULE_FILES:
                problems.append(f"{path}: missing (every config dir needs {', '.join(RULE_FILES)})")
            continue
        text = path.read_text(encoding="utf-8")
        digest.update(filename.encode() + b"\0" + text.encode())
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            problems.append(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}")
            continue
        except ValueError as exc:  # e.g. an unquoted impossible date: 2027-02-30
            problems.append(f"{path}: not valid YAML: {exc} (quote dates and times)")
            continue
        if data is None and filename in OPTIONAL_FILES:
            data = {}
        if not isinstance(data, dict):
            problems.append(
                f"{path}: expected a mapping of keys at the top, got {type(data).__name__}"
            )
            continue
        try:
            # Only business durations scale; operator timeouts stay real.
            scale = time_scale if filename in RULE_FILES else 1.0
            parsed[filename] = model.model_validate(data, context={"time_scale": scale})
        except ValidationError as exc:
            problems.extend(f"{path}: {_describe(err)}" for err in exc.errors())
    if problems:
        raise ConfigError(problems)
    cadences: CadenceBook = parsed["cadences.yaml"]
    if time_scale != 1:
        # Office hours cannot be compressed: a demo at 10x speed would wait hours of real time
        # for 08:00. Frequency caps do scale.
        cadences = cadences.model_copy(
            update={
                "send_window": SendWindow.anytime(),
                "cadences": [c.model_copy(update={"send_window": None}) for c in cadences.cadences],
            }
        )
    rules = Rules(
        scoring=parsed["scoring.yaml"],
        cadences=cadences,
        routing=parsed["routing.yaml"],
        engine=parsed.get("engine.yaml", EngineSettings()),
        version=f"{digest.hexdigest()[:12]}" + (f"@x{time_scale:g}" if time_scale != 1 else ""),
    )
    if templates_dir is not None:
        from nurture.templating import template_problems

        problems = template_problems(rules, templates_dir)
        if problems:
            raise ConfigError(problems)
    return rules


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"] if p not in ("function-after", "in_")) or "(top)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("missing",):
        return f"{loc}: required key is missing"
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown key (check the spelling)"
    given = error.get("input")
    quiet = isinstance(given, dict | list) or given is None or repr(given) in message
    shown = "" if quiet else f", got {given!r}"
    return f"{loc}: {message}{shown}"
