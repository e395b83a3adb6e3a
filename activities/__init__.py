"""Temporal activities: every side effect of a lead's life (email, routing turns, records)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.crm import CrmActivities
from activities.email import EmailActivities, Mailer
from activities.records import RecordActivities
from activities.routing import RoutingActivities
from activities.rules import RulesActivities
from activities.tasks import TaskActivities
from nurture.config.rules_source import RulesSource

__all__ = [
    "CrmActivities",
    "EmailActivities",
    "Mailer",
    "RecordActivities",
    "RoutingActivities",
    "RulesActivities",
    "RulesSource",
    "TaskActivities",
    "all_activities",
]


def all_activities(
    rules: RulesActivities,
    email: EmailActivities,
    routing: RoutingActivities,
    records: RecordActivities,
    tasks: TaskActivities,
    crm: CrmActivities,
) -> list[Callable[..., Any]]:
    return [
        rules.load_rules,
        email.send_email,
        routing.assign_rep,
        records.record_transition,
        records.record_facts,
        tasks.create_task,
        tasks.close_task,
        crm.upsert_lead,
        crm.add_task,
    ]
