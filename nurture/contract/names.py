"""The names a lead answers to in Temporal, and the search attributes it publishes.

Changing any of these strands running leads (their histories and the visibility store use the
names): they are part of the contract, not of the workflow's code. ``workflows/lead_shell.py``
declares its signals, updates and query with these constants; clients call them by name."""

from __future__ import annotations

from typing import Final, Literal, get_args

from temporalio.common import SearchAttributeKey

LEAD_WORKFLOW: Final = "LeadWorkflow"
"""The workflow type: one long-lived run (continued as new) per lead."""

PROFILE_SIGNAL: Final = "profile"
EVENT_SIGNAL: Final = "event"
STATE_QUERY: Final = "state"
FORGET_SIGNAL: Final = "forget"
"""Sent by an erasure just before it terminates the lead: from then on the lead refuses its
``state`` query (``LEAD_ERASED``), so a worker that still holds the lead in memory shows
nothing of the person."""
LEAD_ERASED: Final = "LeadErased"
PREFERENCES_UPDATE: Final = "preferences"
"""The person's choice of topics from the preferences page (applied once per request id)."""
AHEAD_OF_WORKFLOW_TASK: Final = "ahead of its workflow task"
"""In the message of a query that failed because the lead refused to run history events
delivered with it before their workflow task (``workflows/clock.py``): nothing was decided and
the lead is fine; ask again (the next query waits for that workflow task)."""
AHEAD_OF_WORKFLOW_TASK_ERROR: Final = "AheadOfWorkflowTask"
"""The type of the lead's refusal (its message is encrypted on the way to the client)."""

RepUpdate = Literal["accept", "contact", "reject", "outcome", "complete_task"]
"""The updates a rep's action is: each is applied whole or refused with the reason."""
REP_UPDATES: Final[tuple[str, ...]] = get_args(RepUpdate)

STAGE = SearchAttributeKey.for_keyword("LeadStage")
SCORE = SearchAttributeKey.for_int("LeadScore")
GRADE = SearchAttributeKey.for_keyword("LeadGrade")
OWNER = SearchAttributeKey.for_keyword("LeadOwner")
SEGMENT = SearchAttributeKey.for_keyword("LeadSegment")
CAMPAIGN = SearchAttributeKey.for_keyword("LeadCampaign")
SLA_DUE = SearchAttributeKey.for_datetime("SlaDueAt")
SEARCH_ATTRIBUTES = (STAGE, SCORE, GRADE, OWNER, SEGMENT, CAMPAIGN, SLA_DUE)
"""Registered on the namespace (``make up`` and the tests do it); no personal data in any."""

# Metrics: Prometheus series operators scrape from a worker (``docs/operations.md``). Counters
# are exported with ``_total`` added (``nurture_events_total``), as the SDK's own are.
EVENTS_COUNTER: Final = "nurture_events"
"""Behaviour events the leads applied (duplicates not counted)."""
HANDOFFS_COUNTER: Final = "nurture_handoffs"
"""Leads handed to sales."""
SLA_MISSES_COUNTER: Final = "nurture_sla_misses"
"""Reps' SLA turns missed (each escalates)."""
FACTS_QUEUED_COUNTER: Final = "nurture_facts_queued"
"""Facts the leads queued for the read model."""
FACTS_DONE_COUNTER: Final = "nurture_facts_written"
"""Facts the leads' read-model writes took off their queues: while the database keeps up, it
grows as fast as ``nurture_facts_queued_total``; the difference of their rates is the backlog
growing (a database down or too slow)."""
EMAILS_COUNTER: Final = "nurture_emails_sent"
"""Emails by ``category`` (touch, handoff, escalation…) and ``status`` (sent, already_sent,
suppressed, refused)."""
TOUCHES_HELD: Final = "nurture_touches_held"
"""Touches held now because their email cannot be rendered (a template error)."""
RULES_INFO: Final = "nurture_rules_info"
"""1, labelled with the rules ``version`` this worker uses."""
