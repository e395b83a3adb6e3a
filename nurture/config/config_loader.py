"""Read the rule files from a config directory, with errors a marketer can act on.

Every problem names the file, its line, the cadence/step/rule it is in and what was expected,
e.g. ``config/cadences.yaml:42: cadence "enterprise", step 2 "security": delay '3dd' is not a
duration (use 90s, 4h, 3d, 2w or 1h30m)``. Templates are read with the rules, checked against
sample leads, and frozen with them: the rules version covers both.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from nurture.domain.rules import CadenceBook, EngineSettings, RoutingRules, Rules, ScoringRules
from nurture.domain.send_window import SendWindow

if TYPE_CHECKING:
    from nurture.config.templating import TemplateSet

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"  # the checkout's
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

RULE_FILES: dict[str, type[BaseModel]] = {
    "scoring.yaml": ScoringRules,
    "cadences.yaml": CadenceBook,
    "routing.yaml": RoutingRules,
}
OPTIONAL_FILES: dict[str, type[BaseModel]] = {"engine.yaml": EngineSettings}
M = TypeVar("M", bound=BaseModel)


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


@dataclass(frozen=True)
class RuleSet:
    """One version of what marketers decide: the rules and the templates checked with them.

    Workflows get ``rules`` only (small, recorded in their histories); ``templates`` stay in
    the worker, which renders from them and never from the files on disk."""

    rules: Rules
    templates: TemplateSet | None


def load_rules(
    config_dir: Path, templates_dir: Path | None = None, time_scale: float = 1.0
) -> Rules:
    """Load and validate every rule file; raise :class:`ConfigError` listing all problems.

    With ``templates_dir``, every cadence template is also rendered against sample leads, so a
    broken template stops the worker at start rather than a lead's fourth touch at 3 a.m.
    ``time_scale`` divides every duration (60 makes an hour a minute) for demos and tests.
    """
    return load_rule_set(config_dir, templates_dir, time_scale).rules


def load_rule_set(
    config_dir: Path, templates_dir: Path | None = None, time_scale: float = 1.0
) -> RuleSet:
    """:func:`load_rules`, keeping the templates read (once) and checked with the rules; the
    version is the digest of the rule files and, with ``templates_dir``, of every template."""
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
        places = _YamlPlaces(path, text)
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
            problems.extend(places.describe(err) for err in exc.errors())
    templates: TemplateSet | None = None
    if templates_dir is not None:
        from nurture.config.templating import TemplateSet

        templates = TemplateSet.read(templates_dir)
        digest.update(b"templates\0" + templates.digest.encode())
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
    if templates is not None:
        from nurture.config.templating import template_problems

        problems = template_problems(rules, templates)
        if problems:
            raise ConfigError(problems)
    return RuleSet(rules=rules, templates=templates)


def read_settings_file(path: Path, model: type[M]) -> M:
    """An optional YAML file of the config dir outside the workflows' rules (the website's
    ``tracking.yaml``, ``forms.yaml``): the model's defaults when the file is missing or
    empty; :class:`ConfigError` naming the file, line and key of every problem otherwise."""
    if not path.exists():
        return model()
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        return model()
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{path}: expected a mapping of keys at the top, got {type(data).__name__}"]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        places = _YamlPlaces(path, text)
        raise ConfigError([places.describe(err) for err in exc.errors()]) from None


def describe_in_file(path: Path, loc: tuple[str | int, ...], message: str) -> str:
    """A problem found after a file validated (a check across files), said as its
    validation errors are: ``file:line: form "contact": event: what is wrong``."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    error = {"loc": loc, "msg": message, "type": "value_error", "input": None}
    return _YamlPlaces(path, text).describe(error)


NAMED_LISTS: dict[str, tuple[str, str | None]] = {
    "cadences": ("cadence", "id"),
    "steps": ("step", "name"),
    "reps": ("rep", "id"),
    "rules": ("routing rule", "name"),
    "fit": ("fit rule", "name"),
    "url_rules": ("url rule", "pattern"),
    "grades": ("grade", "grade"),
    "away": ("away period", None),
    "forms": ("form", "name"),
}
"""List keys whose items a marketer knows by a name: the problem says ``cadence "enterprise",
step 2 "security"`` rather than ``cadences.0.steps.1``. Steps keep their number too: order
matters in a cadence."""


class _YamlPlaces:
    """Where each value of one YAML file is (PyYAML's node marks), to turn pydantic's error
    locations into ``file:line: cadence "x", step 2 "y": key: what is wrong``."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        try:
            self.root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except (yaml.YAMLError, ValueError):
            self.root = None

    def describe(self, error: Any) -> str:
        items, keys, node = self._walk(error["loc"])
        if not items and not keys:  # a file-wide check that names the item it is about
            items, node = self._named_in_message(error["msg"].removeprefix("Value error, "))
        line = f":{node.start_mark.line + 1}" if node is not None and node is not self.root else ""
        what = _what(error, ".".join(keys))
        if items:  # a validator's message may start with the same name: say it once
            label, _, name = items[-1]
            what = what.removeprefix(f"{label} {name!r}").lstrip(": ")
        where = ", ".join(_item_text(*item) for item in items)
        return f"{self.path}{line}: " + ": ".join(part for part in (where, what) if part)

    def _named_in_message(
        self, message: str
    ) -> tuple[list[tuple[str, int, str | None]], yaml.Node | None]:
        """``routing rule 'emea' pool: …`` is about the top-level item named emea: its line."""
        for key, (label, name_key) in NAMED_LISTS.items():
            if name_key is None or not message.startswith(f"{label} '"):
                continue
            wanted = message.removeprefix(f"{label} '").split("'", 1)[0]
            listed = _child(self.root, key)
            for index, item in enumerate(getattr(listed, "value", None) or []):
                if getattr(_child(item, name_key), "value", None) == wanted:
                    return [(label, index + 1, wanted)], item
        return [], self.root

    def _walk(
        self, loc: tuple[Any, ...]
    ) -> tuple[list[tuple[str, int, str | None]], list[str], yaml.Node | None]:
        """The named items along ``loc`` (label, number, name), the keys after the last of
        them, and the deepest node found."""
        items: list[tuple[str, int, str | None]] = []
        keys: list[str] = []
        node = self.root
        for part in loc:
            if isinstance(part, str) and ("[" in part or part in ("function-after", "in_")):
                continue  # pydantic's own steps (validators, unions), not keys of the file
            child = _child(node, part)
            named = NAMED_LISTS.get(keys[-1]) if keys and isinstance(part, int) else None
            if named is not None:
                keys.pop()
                label, name_key = named
                name = getattr(_child(child, name_key), "value", None) if name_key else None
                items.append((label, part + 1, name if isinstance(name, str) else None))
            else:
                keys.append(str(part))
            if child is None:
                break  # a missing key: the line of its parent
            node = child
        return items, keys, node


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


def _item_text(label: str, number: int, name: str | None) -> str:
    """``cadence "enterprise"``, ``step 2 "security"`` (order matters in a cadence),
    ``rep 3`` when the item has no name yet."""
    if name is None:
        return f"{label} {number}"
    return f'{label} {number} "{name}"' if label == "step" else f'{label} "{name}"'


def _what(error: Any, key: str) -> str:
    message = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling)"
    if message.startswith("expected a duration"):
        return f"{key} {given!r} is not a duration (use 90s, 4h, 3d, 2w or 1h30m)"
    quiet = isinstance(given, dict | list) or given is None or repr(given) in message
    shown = "" if quiet else f", got {given!r}"
    return f"{key}: {message}{shown}" if key else f"{message}{shown}"
