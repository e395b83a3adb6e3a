"""The contact SLA: when it is due and whom a miss alerts."""

from __future__ import annotations

from datetime import datetime, timedelta

from nurture.domain.rules import RoutingRules


def sla_due_at(assigned_at: datetime, routing: RoutingRules) -> datetime:
    return assigned_at + routing.sla.contact_within


def escalation_recipients(missed_by: str, miss_number: int, routing: RoutingRules) -> list[str]:
    """The missing rep's manager; from the second miss on also ``sla.second_escalation``.

    Never empty: with no manager on file the fallback owner hears about it. The rep who
    missed is not alerted about their own miss (unless they are the last resort).
    """
    rep = routing.rep(missed_by)
    recipients: list[str] = []
    if rep is not None and rep.manager:
        recipients.append(rep.manager)
    if miss_number >= 2 and routing.sla.second_escalation:
        recipients.append(routing.sla.second_escalation)
    recipients = [r for r in recipients if r != missed_by]
    if not recipients:
        recipients.append(routing.fallback_owner)
    return list(dict.fromkeys(recipients))


def ladder_climbed(miss_number: int, routing: RoutingRules) -> bool:
    """Whether miss ``miss_number`` reached the top of the escalation ladder: the manager hears
    of the first miss, the head of sales (``sla.second_escalation``) from the second on."""
    return miss_number >= (2 if routing.sla.second_escalation else 1)


def next_chase_at(now: datetime, miss_number: int, routing: RoutingRules) -> datetime:
    """When an owner who kept the lead after miss ``miss_number`` is chased again: after
    another SLA period while the ladder has rungs left, then every ``sla.remind_every``
    (a daily reminder, never more often than the SLA period itself)."""
    period: timedelta = routing.sla.contact_within
    if ladder_climbed(miss_number, routing):
        period = max(period, routing.sla.remind_every)
    return now + period
