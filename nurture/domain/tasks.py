"""Touches that are not emails: calls, voicemails and direct mail, done by inside sales.

A cadence step on one of these channels becomes a task in the inside-sales queue. Whoever does
it records an outcome from the channel's list; the outcome reaches the lead as a behaviour
event named ``<channel>_<outcome>`` (e.g. ``call_connected``), scored by ``scoring.yaml``.
"""

from __future__ import annotations

from typing import Literal

TaskChannel = Literal["call", "voicemail", "direct_mail"]
TASK_CHANNELS: tuple[TaskChannel, ...] = ("call", "voicemail", "direct_mail")

OUTCOMES: dict[TaskChannel, tuple[str, ...]] = {
    "call": (
        "connected",
        "meeting_booked",
        "left_voicemail",
        "no_answer",
        "wrong_number",
        "not_interested",
    ),
    "voicemail": ("left_voicemail", "no_answer", "wrong_number"),
    "direct_mail": ("sent", "returned"),
}

TaskStatus = Literal["open", "done", "expired", "cancelled"]


def outcome_event_type(channel: TaskChannel, outcome: str) -> str:
    return f"{channel}_{outcome}"


def outcome_error(channel: TaskChannel, outcome: str) -> str | None:
    """Why ``outcome`` is not a valid result for a ``channel`` task, or None."""
    allowed = OUTCOMES[channel]
    if outcome not in allowed:
        return f"{outcome!r} is not an outcome of a {channel} task; use one of {', '.join(allowed)}"
    return None


def missing_contact(channel: TaskChannel, phone: str | None, address: str | None) -> str | None:
    """What the lead's profile lacks for this kind of task, or None."""
    if channel in ("call", "voicemail") and not phone:
        return "no phone number on file"
    if channel == "direct_mail" and not address:
        return "no postal address on file"
    return None
