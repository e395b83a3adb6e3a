"""Every change to the commands of running leads, as a patch id with what it changed, and the
set a run has. The workflow decides the set once, first thing in the run (:meth:`Patches.asked`,
with ``workflow.patched``: before any local activity, so a replay meets each marker where the
original run wrote it); the lead's core only reads it. A run begun before a change keeps its
old behaviour until its next continue-as-new; ``tests/test_replay.py`` replays a recorded
history of every version.

A run begun on code that has every change up to :data:`PATCH_BASELINE` asks that one patch
instead of each: every ``workflow.patched`` leaves a marker and an upsert of Temporal's
``TemporalChangeVersion`` search attribute (listing every patch so far) in the run's history,
nine of each per run (3 KB) before the baseline. A change after it is a baseline of its own,
standing for itself and every change before it (:data:`PATCH_SALES_FIRST`), asked before the
older baselines: a run begun today still asks one patch and leaves one marker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

PATCH_SEND_WINDOWS = "send-windows-and-frequency-cap"
"""Touches wait for the send window and the frequency cap. Runs started before this change
send as they did (their histories replay unchanged) until their next continue-as-new."""
PATCH_READ_MODEL = "read-model-ledger"
"""Leads report what happens to them (events, score changes, transitions, handoffs, SLA
clocks, touches, outcomes) to the read model through a batched local activity. Runs started
before this change report only stage transitions, as they did, until their next
continue-as-new."""
PATCH_STEADY_TIMER = "steady-wake-timer"
"""The timer a lead sleeps on stays armed across events while it fires no later than the next
thing due (waking early is harmless: the loop checks what is due and sleeps again). Before, every
event cancelled the timer and started a new one: two commands and two history events per event.
Runs started before this change keep doing that until their next continue-as-new."""
PATCH_VISIBLE_UPDATES = "visibility-after-every-update"
"""Every rep action (accept, contact, reject, outcome, task done) publishes the search
attributes it changed before it returns, instead of leaving LeadStage/LeadOwner/SlaDueAt stale
until the lead's next timer or event; events dated in the future count from when they arrived.
Runs started before this change publish only after queued work, as they did."""
PATCH_SLA_LADDER = "sla-ladder-and-held-touches"
"""An SLA miss never hands the lead back to its owner or to a rep who already missed on it;
once the ladder (rep, manager, head of sales) is climbed, the owner keeps the lead and the
escalation repeats daily, not every SLA period. A touch whose template cannot be rendered is
held in place (re-checked hourly, sent again once the rules version changes) instead of being
dropped. Runs started before this change keep the old SLA chase and skip such touches."""
PATCH_DERIVED_KEYS = "keys-from-what-happened"
"""Rep alerts, CRM pushes and CRM notes are keyed by what they are about
(``nurture/core/idempotency.py``) instead of by the lead's ``transitions`` counter, which now
counts stage transitions only. Runs started before this change key them by the counter until
their next continue-as-new (keys differ in form, so an old key and a new one never name
different sends)."""
PATCH_ENROLMENT_VISIBLE = "visibility-after-enrolment"
"""A lead publishes its search attributes as soon as it is enrolled in a cadence (``LeadSegment``
at once), instead of at its next timer or event (up to the first touch's delay later). Runs
started before this change publish as they did until their next continue-as-new."""
PATCH_DECAY_IN_EVENT_TIME = "decay-up-to-each-event"
"""An event that happened before the lead heard of it (a website visit handed over when the
visitor is identified, an import of past activity) first takes the decay its inactivity had
cost by then, so a history told late scores as it would have live. Runs started before this
change score a late event as it arrives, decaying only on their timers."""
PATCH_RULES_BY_VERSION = "rules-by-version"
"""A lead's history records the version of the rules it read, not the rules (13 KB per lead and
run); the worker takes them from its shelf, or from the engine database when it never met that
version (``nurture/contract/shared_rules.py``). Runs started before this change read the rules
themselves until their next continue-as-new."""
PATCH_BASELINE = "baseline-2026-12"
"""Every patch of :data:`PATCHES` at once, for runs begun on code that has them all (since
2026-12-04): such a run asks only this one. Runs begun before it have no such marker and ask
each patch as they did."""
PATCH_SALES_FIRST = "baseline-2026-12-06-sales-first"
"""Sales work goes first on the lead's own workflow tasks. The read-model write waits (at most
``SALES_FIRST_FOR`` in ``workflows/lead_shell.py``) while an activity sales waits for (picking the
rep, the rep's alert, an escalation) is in flight: a local activity holds back every command of
its workflow task until it is done, so written beside them it delayed the rep's alert on each
task of a handoff. And a handoff in the workflow task that just read the rules (a new lead's
first event) takes those rules instead of reading them again. Also a baseline: a run begun on
code with this change asks only this patch, which stands for every patch of :data:`PATCHES`.
Runs begun before it write beside sales work and read the rules twice, as they did."""
PATCH_BOUNDED_CARRY = "baseline-2026-12-07-bounded-carry"
"""A run about to continue as new with more queued events, or more facts not yet written, than
``CARRIED_BYTES_MAX`` (``workflows/lead_shell.py``) applies and writes them first, so the next
run's input stays far inside what Temporal takes (2 MB): 600 events of 15 KB sent while no
worker ran made an input of 9.1 MB, refused on every attempt, and the lead was stuck for good.
The newest baseline: a run begun on code with this change asks only this patch, which stands
for every change before it. Runs begun before it carry everything, as they did."""
PATCHES = (
    PATCH_SEND_WINDOWS,
    PATCH_READ_MODEL,
    PATCH_STEADY_TIMER,
    PATCH_VISIBLE_UPDATES,
    PATCH_SLA_LADDER,
    PATCH_DERIVED_KEYS,
    PATCH_ENROLMENT_VISIBLE,
    PATCH_DECAY_IN_EVENT_TIME,
    PATCH_RULES_BY_VERSION,
)
"""In the order a run begun before :data:`PATCH_BASELINE` asks for them (first thing in the
run, before any local activity)."""


@dataclass(frozen=True)
class Patches:
    """What a run does the new way (True) or as it did before the change (False)."""

    windows: bool = False
    ledger: bool = False
    steady_timer: bool = False
    visible_updates: bool = False
    sla_ladder: bool = False
    derived_keys: bool = False
    enrolment_visible: bool = False
    decay_in_event_time: bool = False
    rules_by_version: bool = False
    sales_first: bool = False
    bounded_carry: bool = False

    @classmethod
    def asked(cls, patched: Callable[[str], bool]) -> Patches:
        """Ask ``patched`` (Temporal's ``workflow.patched``) for the newest baseline, then each
        older one, and for every patch in :data:`PATCHES` order in a run begun before them all:
        call once, first thing in the run."""
        if patched(PATCH_BOUNDED_CARRY):
            return cls.every()
        if patched(PATCH_SALES_FIRST):
            return replace(cls.every(), bounded_carry=False)
        if patched(PATCH_BASELINE):
            return replace(cls.every(), sales_first=False, bounded_carry=False)
        answers = {patch: patched(patch) for patch in PATCHES}
        return cls(
            windows=answers[PATCH_SEND_WINDOWS],
            ledger=answers[PATCH_READ_MODEL],
            steady_timer=answers[PATCH_STEADY_TIMER],
            visible_updates=answers[PATCH_VISIBLE_UPDATES],
            sla_ladder=answers[PATCH_SLA_LADDER],
            derived_keys=answers[PATCH_DERIVED_KEYS],
            enrolment_visible=answers[PATCH_ENROLMENT_VISIBLE],
            decay_in_event_time=answers[PATCH_DECAY_IN_EVENT_TIME],
            rules_by_version=answers[PATCH_RULES_BY_VERSION],
        )

    @classmethod
    def every(cls) -> Patches:
        """Every change applied: a run begun on today's code."""
        return cls(**{flag.name: True for flag in fields(cls)})
