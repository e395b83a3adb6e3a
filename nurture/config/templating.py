"""Email rendering with Jinja2, from templates frozen with the rules they were checked with.

Only marketer-written files and cadence text are ever template source: lead values reach a
template as variables, and rep-alert subjects are plain text. Rendering is sandboxed
(immutable sandbox), strict about undefined variables, and bounded: a loop, call or operator
spends from a per-render budget, ``range`` and widths are capped, and output has a size limit,
so a pathological template fails fast with :class:`TemplateProblem` instead of pinning a worker.
Errors say file:line and the missing name; :func:`template_problems` renders every template
against sample leads before any lead does, and lists every undefined name at once.
"""

from __future__ import annotations

import hashlib
import re
import string
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial, wraps
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol

from jinja2 import (
    BaseLoader,
    ChainableUndefined,
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    nodes,
    select_autoescape,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from nurture.domain.rules import Rules

NOTIFICATION_KINDS = ("handoff", "reassigned", "escalation", "activity")
TEMPLATE_SUFFIXES = (".html", ".htm", ".txt")

MAX_RANGE = 1_000
"""Most items one ``range()`` in a template may have."""
OPERATION_BUDGET = 20_000
"""Loop iterations, calls and operators one render may spend (the shipped templates spend
under 100 with a full sample lead; a macro call costs ~15 us, so the budget is ~0.3 s)."""
MAX_OUTPUT_CHARS = 1_000_000
"""Largest rendered body (and largest value a template may build on the way)."""
MAX_PRODUCED_CHARS = 8_000_000
"""All the text and items a render may build, summed over every call, filter and operator."""
MAX_WIDTH = 1_000
"""Largest padding, width, slice count or repeat count a template may ask for."""
RENDER_SECONDS = 2.0
"""Wall-clock limit of one render: a last resort behind the budgets above."""


class TemplateProblem(Exception):
    """A template that cannot render; the message says file:line and what is wrong."""


class TemplateBudgetExceeded(SecurityError):
    """A render spent more than its budget (operations, output, time)."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


# --- the budget of one render ---------------------------------------------------------------


@dataclass
class RenderBudget:
    operations: int = OPERATION_BUDGET
    produced: int = MAX_PRODUCED_CHARS
    deadline: float = field(default_factory=lambda: time.monotonic() + RENDER_SECONDS)

    def spend(self, operations: int = 1) -> None:
        self.operations -= operations
        if self.operations < 0:
            raise TemplateBudgetExceeded(
                f"template too expensive: more than {OPERATION_BUDGET:,} loop iterations, "
                "calls and operations in one email"
            )
        if self.operations % 256 == 0 and time.monotonic() > self.deadline:
            raise TemplateBudgetExceeded(f"template too slow: over {RENDER_SECONDS:g} s to render")

    def built(self, value: Any) -> Any:
        """Account for a value a call, filter or operator made; refuse one that is too big."""
        size = len(value) if isinstance(value, str | bytes | list | tuple | dict | set) else 0
        if size > MAX_OUTPUT_CHARS:
            raise TemplateBudgetExceeded(
                f"template builds a value of {size:,} items (limit {MAX_OUTPUT_CHARS:,})"
            )
        self.produced -= size
        if self.produced < 0:
            raise TemplateBudgetExceeded(
                f"template builds more than {MAX_PRODUCED_CHARS:,} characters in one email"
            )
        self.spend()
        return value


_budget: ContextVar[RenderBudget | None] = ContextVar("template_budget", default=None)


def _current_budget() -> RenderBudget:
    budget = _budget.get()
    if budget is None:  # a render outside render_template: give it a budget of its own
        budget = RenderBudget()
        _budget.set(budget)
    return budget


def _budgeted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this: each item spends one operation."""
    budget = _current_budget()
    for item in iterable:
        budget.spend()
        yield item


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateBudgetExceeded(f"range() of {len(numbers):,} items (limit {MAX_RANGE:,})")
    return numbers


_BUDGET_FILTER = "__nurture_budgeted"
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "slice", "batch"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_widths(numbers: Iterable[Any], what: str) -> None:
    for number in numbers:
        if isinstance(number, int) and not isinstance(number, bool) and abs(number) > MAX_WIDTH:
            raise TemplateBudgetExceeded(f"{what} of {number:,} (limit {MAX_WIDTH:,})")


def _check_format_string(fmt: str) -> None:
    """Refuse widths/precisions over :data:`MAX_WIDTH`: ``'%99999999s'``, ``{:>99999999}``."""
    widths: list[int] = []
    for match in _PERCENT_SPEC.finditer(fmt):
        if "*" in match.group(0):
            raise TemplateBudgetExceeded("'*' widths are not allowed in templates")
        widths += [int(g) for g in match.groups() if g]
    try:
        for _, _, spec, _ in string.Formatter().parse(fmt):
            widths += [int(n) for n in re.findall(r"\d+", spec or "")]
    except ValueError:
        pass  # not a str.format string; the % check above is the one that matters
    _check_widths(widths, "format width")


class BudgetedCodeGenerator(CodeGenerator):
    """Compiles every ``{% for %}`` to iterate through the render budget."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, _BUDGET_FILTER, [], [], None, None, lineno=loop.iter.lineno
            )
        super().visit_Template(node, frame)


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus budgets: see the module docstring."""

    code_generator_class = BudgetedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _bounded_range
        self.filters = {name: _limited_filter(name, f) for name, f in self.filters.items()}
        self.filters[_BUDGET_FILTER] = _budgeted

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _current_budget()
        budget.spend()
        bound_to = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(bound_to, str):
            if name in _WIDTH_METHODS:
                _check_widths([*args, *kwargs.values()], f"{name}() width")
            elif name in ("format", "format_map"):
                _check_format_string(bound_to)
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_budgeted(args[0]), *args[1:])
        return budget.built(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        budget = _current_budget()
        big_power = _is_int(left) and _is_int(right) and right > 0
        if operator_ == "**" and big_power and max(abs(left), 2).bit_length() * right > 4096:
            raise TemplateBudgetExceeded(f"{left} ** {right} is too large a number")
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                repeated = isinstance(seq, str | list | tuple) and _is_int(times)
                if repeated and len(seq) * times > MAX_OUTPUT_CHARS:
                    raise TemplateBudgetExceeded(
                        f"repeating {len(seq):,} items {times:,} times is too large"
                    )
        if operator_ == "%" and isinstance(left, str):
            _check_format_string(left)
        result = self.binop_table[operator_](left, right)
        if _is_int(result) and result.bit_length() > 4096:
            raise TemplateBudgetExceeded("a number in the template grew too large")
        return budget.built(result)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _limited_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, spending from the budget, its widths capped and its result measured."""
    pass_arg = getattr(function, "jinja_pass_arg", None)

    @wraps(function)
    def limited(*args: Any, **kwargs: Any) -> Any:
        budget = _current_budget()
        given = args[1:] if pass_arg is not None else args  # after context/env/eval_ctx
        if name in _WIDTH_FILTERS:
            _check_widths([*given[1:], *kwargs.values()], f"{name} width")
        if name == "format" and given and isinstance(given[0], str):
            _check_format_string(given[0])
        return budget.built(function(*args, **kwargs))

    return limited


# --- templates frozen with the rules --------------------------------------------------------


class FrozenLoader(BaseLoader):
    """Templates from memory: the sources read and checked with one rules version."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = dict(sources)

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source = self.sources.get(template)
        if source is None:
            raise TemplateNotFound(template)
        return source, f"templates/{template}", lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


class TemplateSet:
    """Every template file of a templates directory, as read at one moment, and its digest.

    The worker renders from this, never from disk, so what is sent is what was checked."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources: Mapping[str, str] = dict(sources)
        digest = hashlib.sha256()
        for name in sorted(self.sources):
            digest.update(name.encode() + b"\0" + self.sources[name].encode() + b"\0")
        self.digest = digest.hexdigest()
        self._environment: LimitedEnvironment | None = None

    @classmethod
    def read(cls, templates_dir: Path) -> TemplateSet:
        sources = {
            path.relative_to(templates_dir).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(templates_dir.rglob("*"))
            if path.is_file() and path.suffix in TEMPLATE_SUFFIXES
        }
        return cls(sources)

    @property
    def environment(self) -> LimitedEnvironment:
        """One environment per set: each template compiles once per rules version."""
        if self._environment is None:
            self._environment = make_environment(self)
        return self._environment


class TemplateSource(Protocol):
    def templates(self) -> TemplateSet:
        """The templates of the rules version in force."""
        ...


class FixedTemplates:
    """One template set read once (tests, tools): a worker uses its ``RulesSource``."""

    def __init__(self, templates: Path | TemplateSet) -> None:
        self._set = templates if isinstance(templates, TemplateSet) else TemplateSet.read(templates)

    def templates(self) -> TemplateSet:
        return self._set


def template_source(templates: Path | TemplateSet | TemplateSource) -> TemplateSource:
    if isinstance(templates, Path | TemplateSet):
        return FixedTemplates(templates)
    return templates


def make_environment(
    templates: Path | TemplateSet, undefined: type[Undefined] = StrictUndefined
) -> LimitedEnvironment:
    """A limited sandbox over a frozen template set (a directory is read once, now)."""
    frozen = templates if isinstance(templates, TemplateSet) else TemplateSet.read(templates)
    return LimitedEnvironment(
        loader=FrozenLoader(frozen.sources),
        undefined=undefined,
        autoescape=select_autoescape(["html", "htm"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )


# --- rendering ------------------------------------------------------------------------------


def render_template(template: Template, context: dict[str, Any]) -> str:
    """Render within a fresh budget, stopping as soon as the output is over its cap."""
    token = _budget.set(RenderBudget())
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateBudgetExceeded(
                    f"template output over {MAX_OUTPUT_CHARS:,} characters"
                )
            parts.append(chunk)
        return "".join(parts)
    except RecursionError:
        raise TemplateBudgetExceeded("template recursion too deep") from None
    finally:
        _budget.reset(token)


def _subject_text(subject: str) -> str:
    return " ".join(subject.split())


def render_email(
    env: Environment,
    template: str,
    subject: str,
    context: dict[str, Any],
    subject_is_template: bool = True,
) -> RenderedEmail:
    """Render subject and HTML body; the text part is the HTML's text, or ``<name>.txt``.

    ``subject_is_template`` only for subjects a marketer wrote (cadences.yaml); a subject the
    engine built from lead data (rep alerts) is plain text and never rendered."""
    if subject_is_template:
        try:
            rendered_subject = render_template(env.from_string(subject), context).strip()
        except TemplateError as exc:
            raise TemplateProblem(f"subject {subject!r}: {_message(exc)}") from exc
    else:
        rendered_subject = subject
    try:
        html = render_template(env.get_template(template), context)
        text_name = template.rsplit(".", 1)[0] + ".txt"
        try:
            text = render_template(env.get_template(text_name), context)
        except TemplateNotFound as exc:
            if exc.name != text_name:
                raise
            text = html_to_text(html)
    except TemplateError as exc:
        raise TemplateProblem(describe_template_error(exc, template)) from exc
    return RenderedEmail(subject=_subject_text(rendered_subject), html=html, text=text)


def render_text(env: Environment, source: str, context: dict[str, Any], what: str) -> str:
    """Render a short Jinja text (a task title or instructions) from the cadence file."""
    try:
        return render_template(env.from_string(source), context).strip()
    except TemplateError as exc:
        raise TemplateProblem(f"{what} {source[:60]!r}: {_message(exc)}") from exc


def _message(exc: TemplateError) -> str:
    return getattr(exc, "message", None) or str(exc)


def describe_template_error(exc: TemplateError, template: str) -> str:
    if isinstance(exc, TemplateNotFound):
        return f"templates/{exc.name}: template file not found"
    if isinstance(exc, TemplateSyntaxError):
        return f"templates/{exc.name or template}:{exc.lineno}: syntax error: {exc.message}"
    where = f"templates/{template}"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(TEMPLATE_SUFFIXES) and frame.lineno:
            name = frame.filename.split("templates/", 1)[-1]
            where = f"templates/{name}:{frame.lineno}"
            break
    if isinstance(exc, UndefinedError):
        return f"{where}: undefined variable: {exc.message}"
    return f"{where}: {_message(exc)}"


# --- every undefined name at once (the check) -----------------------------------------------


_found_undefined: ContextVar[dict[tuple[str | None, str], None] | None] = ContextVar(
    "found_undefined", default=None
)


def _template_line() -> str | None:
    """file:line of the template file running now (Jinja's compiled frames know it); None
    for a template compiled from a string (a subject, a task title)."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            if template.filename in (None, "<template>"):  # compiled from a string
                return None
            return f"{template.filename}:{template.get_corresponding_lineno(frame.f_lineno)}"
        frame = frame.f_back
    return None


class CollectingUndefined(ChainableUndefined):
    """Used by the check only: where StrictUndefined would stop at the first undefined name,
    note it (file:line and name) and carry on, so one run lists them all."""

    __slots__ = ()

    def _note(self) -> None:
        found = _found_undefined.get()
        if found is not None:
            found[(_template_line(), self._undefined_message)] = None

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        self._note()
        return self

    def __str__(self) -> str:
        self._note()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._note()
        return iter(())

    def __bool__(self) -> bool:
        self._note()
        return False

    def __len__(self) -> int:
        self._note()
        return 0

    def __eq__(self, other: object) -> bool:
        self._note()
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return id(type(self))

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = __pos__ = __neg__ = __call__ = __getitem__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = __int__ = __float__ = _fail_with_undefined_error
    __complex__ = __pow__ = __rpow__ = _fail_with_undefined_error


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "table"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.parts.append(f"[{href}] ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def sample_contexts(kind: str) -> list[dict[str, Any]]:
    """What a template of this kind gets at send time, for a full profile and a bare one.

    Only the variables the engine really passes for that kind are defined, so a cadence
    template that uses ``rep`` fails the check instead of a lead's send.
    """
    story = {
        "campaign": "webinar-2026",
        "qualified_by": "score 105 reached threshold 100 on email_click",
        "score": 105,
        "grade": "A",
        "fit": {"senior title": 15},
        "top_behaviours": [["form_fill", 25, 1], ["page_view", 12, 6]],
        "recent": [
            {
                "at": "2026-11-24T10:00:00Z",
                "rule": "email_click",
                "points": 8,
                "event_type": "email_click",
                "detail": None,
            }
        ],
    }
    links = {
        "inbox_url": "https://nurture.example/inbox/sample",
        "accept_url": "https://nurture.example/inbox/sample/accept",
        "reject_url": "https://nurture.example/inbox/sample/reject",
    }
    rep: dict[str, Any] = {
        "id": "rep",
        "name": "Sam Rep",
        "email": "sam@example.com",
        "region": "EMEA",
        "industries": [],
        "manager": None,
    }
    full_lead = {
        "lead_id": "sample-1",
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "title": "VP Engineering",
        "company_size": 800,
        "industry": "software",
        "region": "EMEA",
        "country": "GB",
        "budget": 50000,
        "timeframe": "0-3 months",
        "campaign": "webinar-2026",
        "timezone": "Europe/London",
        "phone": "+44 20 7946 0000",
        "address": "1 Engine Row, London",
        "custom": {},
        "display_name": "Ada Lovelace",
    }
    bare_lead = {key: None for key in full_lead} | {
        "lead_id": "sample-2",
        "email": "someone@example.com",
        "custom": {},
        "display_name": "someone@example.com",
    }
    base: dict[str, Any] = {
        "score": 42,
        "grade": "B",
        "stage": "nurturing",
        "owner": None,
        "story": story,
        "sla_due_at": "2026-11-24T14:00:00+00:00",
    }
    base |= KIND_EXTRAS[kind](rep)
    if "rep" in base:  # alerts to reps carry their signed links
        base |= links
    return [{**base, "lead": full_lead}, {**base, "lead": bare_lead, "story": None}]


KIND_EXTRAS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "touch": lambda rep: {
        "step": "welcome",
        "cadence": "sample",
        "cycle": 1,
        "unsubscribe_url": "https://nurture.example/u/sample-token",
        "preferences_url": "https://nurture.example/p/sample-token",
    },
    "task": lambda rep: {"step": "call", "cadence": "sample", "cycle": 1},
    "handoff": lambda rep: {"rep": rep},
    "reassigned": lambda rep: {"rep": rep, "missed_by": "rep0", "miss_number": 1},
    "escalation": lambda rep: {
        "rep": rep,
        "missed_by": "rep0",
        "miss_number": 2,
        "reassigned_to": None,
    },
    "activity": lambda rep: {"rep": rep, "activity": ["2026-11-24 10:00 page_view /pricing"]},
}


def template_problems(rules: Rules, templates: Path | TemplateSet) -> list[str]:
    """Render every cadence step and notification against sample leads; list what fails:
    every undefined name of every template (file:line), not only the first one met."""
    env = make_environment(templates, undefined=CollectingUndefined)
    problems: dict[str, None] = {}
    jobs = [
        (
            version.template,
            version.subject,
            "touch",
            f"cadence {c.id} step {step.name}"
            + (f" variant {version.variant}" if version.variant else ""),
        )
        for c in rules.cadences.cadences
        for step in c.steps
        for version in step.versions()
    ] + [(f"notifications/{kind}.html", None, kind, "notification") for kind in NOTIFICATION_KINDS]
    for template, subject, kind, owner in jobs:
        for context in sample_contexts(kind):
            found = _check_render(
                partial(render_email, env, template, subject or "", context, subject is not None),
                f"subject {subject!r}",
            )
            problems.update((f"{problem} (used by {owner})", None) for problem in found)
    for cad in rules.cadences.cadences:
        for step in cad.steps:
            if step.title is None:
                continue
            for context in sample_contexts("task"):
                for what, text in (("title", step.title), ("instructions", step.instructions)):
                    found = _check_render(
                        partial(render_text, env, text, context, what), f"{what} {text[:60]!r}"
                    )
                    where = f"cadences.yaml: cadence {cad.id} step {step.name}"
                    problems.update((f"{where}: {problem}", None) for problem in found)
    return list(problems)


def _check_render(render: Callable[[], object], label: str) -> list[str]:
    """What one check render found: each undefined name (file:line, or ``label`` for text
    from the cadence file), then the error that stopped it, if any."""
    found: dict[tuple[str | None, str], None] = {}
    token = _found_undefined.set(found)
    stopped: list[str] = []
    try:
        render()
    except TemplateProblem as exc:
        stopped.append(str(exc))
    finally:
        _found_undefined.reset(token)
    notes = [f"{where or label}: undefined variable: {message}" for where, message in found]
    return notes + stopped
