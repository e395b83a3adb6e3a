"""What a SendGrid event says about the email it is about, for the engagement report.

Each event is classified once, when it arrives, and the class is kept beside the event
(``webhookevent.engagement``) with the touch it is about (``webhookevent.touch_key``, from the
``touch_id`` custom arg every touch carries), so the report is one aggregate over the touches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

Engagement = Literal[
    "delivered", "bounced", "open", "machine_open", "click", "unsubscribe", "spamreport"
]

_BY_EVENT: dict[str, Engagement] = {
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "bounced",
    "open": "open",
    "click": "click",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "spamreport": "spamreport",
}


def engagement_of(
    item: dict[str, Any], is_unsubscribe_link: Callable[[str], bool]
) -> Engagement | None:
    """The class of a SendGrid event, or None when it says nothing a marketer counts
    (processed, deferred, a *blocked* bounce, which is temporary, a click on our own
    unsubscribe link, which is the unsubscribe and not interest).

    An open SendGrid marks ``sg_machine_open`` was made by a mail client's privacy proxy
    (Apple Mail Privacy Protection fetches every image of every email it receives): counted
    apart, never as a person's open.
    """
    kind = _BY_EVENT.get(str(item.get("event", "")))
    if kind == "bounced" and item.get("event") == "bounce" and item.get("type") == "blocked":
        return None
    if kind == "open" and item.get("sg_machine_open") is True:
        return "machine_open"
    url = item.get("url")
    if kind == "click" and isinstance(url, str) and is_unsubscribe_link(url):
        return None
    return kind


def touch_key_of(item: dict[str, Any]) -> str | None:
    """The touch an event is about (the ``touch_id`` custom arg), when it is a touch's."""
    touch = item.get("touch_id")
    return touch if isinstance(touch, str) and touch and len(touch) <= 300 else None
