"""``nurture cadence list|show``: the cadences as a marketer reads them, from the rules files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from nurture.cli.output import JsonOpt, console, errors, fail, print_json, table
from nurture.config.config_loader import ConfigError, config_dir_from_env, load_rules
from nurture.domain.cadence_timeline import CadenceTimeline, TimelineStep, cadence_timeline
from nurture.domain.rules import CadenceBook

EXIT_USAGE = 2

cadence_app = typer.Typer(no_args_is_help=True, help="Nurture cadences, as timelines.")
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="rules dir (NURTURE_CONFIG)")]


def _book(config: Path | None) -> CadenceBook:
    try:
        return load_rules(config_dir_from_env(config)).cadences
    except ConfigError as exc:
        errors.print(f"{len(exc.problems)} problem(s) in the rules:", style="bold red")
        for problem in exc.problems:
            errors.print(f"  {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


@cadence_app.command("list")
def cadence_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every cadence: its id, name, the leads it is for, touches and length."""
    book = _book(config)
    timelines = [cadence_timeline(book, c) for c in book.cadences]
    if as_json:
        print_json([t.model_dump(exclude={"steps"}) for t in timelines])
        return
    rows = [[t.id, t.name, t.segment, len(t.steps), t.length] for t in timelines]
    console.print(table("Cadences", ["id", "name", "for", "touches", "length"], rows))


@cadence_app.command("show")
def cadence_show(
    cadence: Annotated[str, typer.Argument(help="the cadence's id (nurture cadence list)")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One cadence's timeline: every touch of every cycle at its offset from enrolment, with
    its channel and subject or task title; the segment, send window, cap and recycle track."""
    book = _book(config)
    found = next((c for c in book.cadences if c.id == cadence), None)
    if found is None:
        known = ", ".join(c.id for c in book.cadences)
        raise typer.Exit(fail(f"no cadence {cadence!r}; the cadences are: {known}", EXIT_USAGE))
    timeline = cadence_timeline(book, found)
    if as_json:
        print_json(timeline.model_dump())
        return
    print_timeline(timeline)


def _what(step: TimelineStep) -> str:
    """An email's subject (each variant's, with its share), or a task's title."""
    if step.channel != "email":
        return f"{step.title} (due within {step.due_within})"
    if not step.variants:
        return step.subject or ""
    lines = [f"A/B {v.name} ({v.share}): {v.subject}" for v in step.variants]
    return "\n".join(lines + ([f"winner rule: {step.winner}"] if step.winner else []))


def print_timeline(t: CadenceTimeline) -> None:
    facts = [
        f"for: {t.segment}",
        f"cycles: {t.cycles}" + (f", {t.between_cycles} apart" if t.cycles > 1 else ""),
        f"length: {t.length} from enrolment to the last touch",
        f"send window: {t.send_window}; frequency cap: {t.frequency_cap}",
        f"topic: {t.topic or '-'}; consent: {t.consent}",
        f"rejected leads go to: {t.recycle_track}",
    ]
    console.print(Panel("\n".join(facts), title=f"{t.id}: {t.name}"))
    rows = [
        [
            s.cycle,
            s.offset,
            s.delay,
            s.step,
            s.channel,
            _what(s),
            "\n".join(v.template for v in s.variants) or s.template or "",
        ]
        for s in t.steps
    ]
    columns = ["cycle", "at", "after", "step", "channel", "subject / task", "template"]
    console.print(table("Touches", columns, rows))
    console.print(
        "at: from enrolment when nothing defers a touch (send window, cap); after a task the "
        "next delay runs from when it is done, at the latest its due time.",
        style="dim",
    )
