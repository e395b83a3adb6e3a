"""A cadence as a marketer reads it: each touch of each cycle at its offset from enrolment,
with its channel and subject or task title, the segment it is for, when it may email, the cap,
and where a rejected lead goes (the recycle track). ``nurture cadence show`` prints it; the
cadence preview page shows the same."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from nurture.domain.durations import format_duration
from nurture.domain.matching import Condition
from nurture.domain.rules import Cadence, CadenceBook, CadenceStep, WinnerRule
from nurture.domain.send_window import describe


class TimelineVariant(BaseModel):
    """One version of an A/B-tested email: its share of the leads, subject and template."""

    name: str
    share: str
    """``50 %``: its weight over the step's total"""
    subject: str
    template: str


class TimelineStep(BaseModel):
    cycle: int
    step: str
    channel: str
    delay: str
    """after the previous touch (or the enrolment, or the previous cycle's end)"""
    offset: str
    """from the enrolment, when nothing defers the touch (a send window, the cap, a task
    done only at its due time: the next step's delay runs from when a task is done)"""
    subject: str | None = None
    """an email's subject (Jinja2 text, as written)"""
    template: str | None = None
    title: str | None = None
    """a task's title (Jinja2 text, as written)"""
    due_within: str | None = None
    variants: list[TimelineVariant] = []
    """an A/B test's versions (none: every lead gets the one email)"""
    winner: str | None = None
    """the A/B test's winner rule, in words"""


class CadenceTimeline(BaseModel):
    id: str
    name: str
    segment: str
    cycles: int
    between_cycles: str
    send_window: str
    frequency_cap: str
    topic: str | None
    consent: str
    recycle: bool
    recycle_track: str
    """where a lead sales rejects goes: the recycle cadence"""
    steps: list[TimelineStep]
    length: str
    """from the enrolment to the last touch"""


def cadence_timeline(book: CadenceBook, cadence: Cadence) -> CadenceTimeline:
    steps: list[TimelineStep] = []
    offset = timedelta(0)
    for cycle in range(1, cadence.cycles + 1):
        for index, step in enumerate(cadence.steps):
            pause = cadence.between_cycles if cycle > 1 and index == 0 else timedelta(0)
            delay = pause + step.delay
            offset += delay
            steps.append(
                TimelineStep(
                    cycle=cycle,
                    step=step.name,
                    channel=step.channel,
                    delay=format_duration(delay),
                    offset=format_duration(offset),
                    subject=step.subject,
                    template=step.template,
                    title=step.title,
                    due_within=_task_only(step.channel, step.due_within),
                    variants=_variants(step),
                    winner=_winner_rule(step.winner),
                )
            )
    cap = book.frequency_cap
    recycle = book.recycle_cadence
    return CadenceTimeline(
        id=cadence.id,
        name=cadence.name,
        segment=(
            "leads sales rejected (the recycle track)"
            if cadence.recycle
            else describe_segment(cadence.segment)
        ),
        cycles=cadence.cycles,
        between_cycles=format_duration(cadence.between_cycles),
        send_window=describe(book.window_for(cadence)),
        frequency_cap=f"at most {cap.max_emails} per {format_duration(cap.per)}" if cap else "none",
        topic=cadence.topic,
        consent=cadence.consent,
        recycle=cadence.recycle,
        recycle_track="this cadence" if cadence.recycle else f"{recycle.id} ({recycle.name})",
        steps=steps,
        length=format_duration(offset),
    )


def _variants(step: CadenceStep) -> list[TimelineVariant]:
    total = sum(v.weight for v in step.variants)
    emails = [(variant, step.email(variant)) for variant in step.variants]
    return [
        TimelineVariant(
            name=variant.name,
            share=f"{variant.weight / total:.0%}".replace("%", " %"),
            subject=email.subject,
            template=email.template,
        )
        for variant, email in emails
    ]


def _winner_rule(rule: WinnerRule | None) -> str | None:
    if rule is None:
        return None
    return (
        f"the best on {rule.metric}s goes to everyone once each variant was sent "
        f"{rule.after:,} times and one is {rule.min_probability:.0%} likely the best"
    ).replace("%", " %")


def _task_only(channel: str, due_within: timedelta) -> str | None:
    return None if channel == "email" else format_duration(due_within)


def describe_segment(segment: Condition) -> str:
    """``company_size min 500; industry in [saas, fintech]``, or ``every lead``."""
    if not segment:
        return "every lead (the catch-all)"
    parts = []
    for field, test in segment.items():
        tests: dict[str, Any] = test.model_dump(exclude_none=True)
        parts.append(
            f"{field} " + ", ".join(f"{k.rstrip('_')} {_plain(v)}" for k, v in tests.items())
        )
    return "; ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return str(value)
