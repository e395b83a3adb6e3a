"""Nurturing a lead: its cadence, each touch as it comes due (an email sent, held for the send
window, held for a broken template, or skipped with its reason), and the inside-sales tasks of
call, voicemail and direct-mail steps."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from nurture.contract.ledger import HELD_SUFFIX
from nurture.contract.messages import (
    MARKETING_SENDS_KEPT,
    TASKS_KEPT,
    EmailRequest,
    EmailResult,
    HeldTouch,
    TaskClosure,
    TaskCompletion,
    TaskRef,
    TaskRequest,
)
from nurture.core import facts
from nurture.core.commands import CreateTask, Failed, SendEmail, Step
from nurture.core.consent import Consent
from nurture.core.context import step_context
from nurture.domain import cadence, send_window, variants
from nurture.domain.cadence import CadenceProgress
from nurture.domain.leads import LeadEvent
from nurture.domain.rules import Cadence, CadenceStep, StepVariant, variant_key
from nurture.domain.stages import unknown_rep_error
from nurture.domain.tasks import missing_contact, outcome_error, outcome_event_type

HELD_TOUCH_RECHECK = timedelta(hours=1)  # a held touch looks at the rules this often


class Nurturing(Consent):
    """The cadence a lead in marketing follows, one touch at a time."""

    def enrol(self, chosen: Cadence, reason: str) -> None:
        state = self.state
        self.drop_held(f"enrolled in {chosen.id}")
        state.enrolments += 1
        state.cadence = cadence.enrol(chosen, state.enrolments, self.now())
        state.variants.update(variants.draws_for(state.lead_id, chosen, state.variants))
        if not chosen.recycle:
            state.segment = chosen.id
        state.note(self.now(), "cadence", f"enrolled in {chosen.id} ({reason})")

    def send_due_touch(self) -> Step[None]:
        yield from self.read_rules()
        state, rules, now = self.state, self.rules_now(), self.now()
        progress = state.cadence
        if progress is None or progress.due_at is None or progress.due_at > now:
            return  # a task outcome moved the cadence on while the rules were being read
        book = rules.cadences
        current = book.get(progress.cadence_id)
        if progress.waiting_task is not None:
            # The step's task was not done in time: the cadence moves on without it.
            self.close_task(progress.waiting_task, "expired", by="system")
            progress = state.cadence = progress.model_copy(update={"waiting_task": None})
            if current is not None:
                self.advance(progress, current)
                return
        if current is None:
            state.note(now, "cadence", f"cadence {progress.cadence_id} no longer exists")
            fallback = (
                book.recycle_cadence
                if state.stage == "recycled"
                else (cadence.select_cadence(state.profile, book))
            )
            self.enrol(fallback, "previous cadence removed from config")
            return
        step = cadence.current_step(progress, current)
        if step is None:
            state.cadence = cadence.advance(progress, current, now)
            return
        label = f"{current.id}/{step.name} (cycle {progress.cycle})"
        if step.channel != "email":
            yield from self.start_task(current, progress, step, label)
            return
        key = cadence.touch_key(state.lead_id, progress, step)
        variant = self.variant_for(current, step)
        name = variant.name if variant else None
        if name is not None:
            label += f", variant {name}"
        why = self.why_not_emailed(current)
        if why is not None:
            if state.held_touch is not None and state.held_touch.key == key:
                state.held_touch = None  # skipped with its reason below: no longer waiting
            state.touches_skipped += 1
            state.note(now, "touch skipped", f"{label}: {why}")
            self.report(facts.touch, progress, current.id, step, "skipped", why, variant=name)
        else:
            if self.patches.windows and self.deferred(progress, current, label):
                return
            if self.still_held(key, progress):
                return
            email = step.email(variant)
            context = step_context(state, current.id, progress.cycle, step.name)
            if name is not None:
                context["variant"] = name
            request = EmailRequest(
                key=key,
                lead_id=state.lead_id,
                category="touch",
                to_email=state.profile.email,
                to_name=state.profile.display_name,
                sender=book.sender,
                template=email.template,
                subject=email.subject,
                context=context,
                variant=name,
            )
            sent: EmailResult | Failed = yield SendEmail(request)
            if isinstance(sent, Failed):
                reason = sent.unrenderable if self.patches.sla_ladder else None
                if reason is not None and state.cadence is progress:
                    self.hold(progress, current, step, label, reason)
                    return
                self.failed(f"{request.category} email", sent)
            if state.held_touch is not None and state.held_touch.key == key:
                state.held_touch = None  # its outcome is reported below
                state.note(now, "touch released", f"{label}: tried again after a rules change")
            if isinstance(sent, Failed):
                self.report(
                    facts.touch,
                    progress,
                    current.id,
                    step,
                    "failed",
                    state.last_error,
                    variant=name,
                )
            elif sent.status == "suppressed":
                state.touches_skipped += 1
                state.note(now, "touch skipped", f"{label}: {sent.detail}")
                self.report(
                    facts.touch, progress, current.id, step, "suppressed", sent.detail, variant=name
                )
                self.suppress_email(f"suppression list: {sent.detail}")
            else:
                state.touches_sent += 1
                state.marketing_sends.append(now)
                del state.marketing_sends[:-MARKETING_SENDS_KEPT]
                state.note(now, "touch", f"sent {label}")
                self.report(facts.touch, progress, current.id, step, "sent", None, variant=name)
        if state.cadence is progress:  # a handoff during the send replaced the cadence
            self.advance(progress, current)

    def variant_for(self, current: Cadence, step: CadenceStep) -> StepVariant | None:
        """The version of an A/B-tested step this lead gets: a decided winner for everyone,
        else the lead's own draw (kept from its enrolment; drawn now for a step that became an
        A/B test since, or when the variant drawn was removed)."""
        winner = self.rules_now().winner_of(current, step)
        if winner is not None or not step.variants:
            return winner
        key = variant_key(current.id, step.name)
        kept = step.variant(self.state.variants.get(key))
        if kept is None:
            kept = step.variant(variants.draw_variant(self.state.lead_id, current.id, step))
            assert kept is not None
            self.state.variants[key] = kept.name
        return kept

    def hold(
        self,
        progress: CadenceProgress,
        current: Cadence,
        step: CadenceStep,
        label: str,
        reason: str,
    ) -> None:
        """Keep the touch in its place: its email cannot be rendered (a marketer's template
        error). Checked again hourly; sent once the rules (and with them the templates)
        change. Never skipped unseen: it is on the lead, in the read model and in the audit."""
        state, now = self.state, self.now()
        key = cadence.touch_key(state.lead_id, progress, step)
        earlier = state.held_touch if state.held_touch and state.held_touch.key == key else None
        state.held_touch = HeldTouch(
            key=key,
            cadence=current.id,
            step=step.name,
            cycle=progress.cycle,
            label=label,
            reason=reason,
            since=earlier.since if earlier else now,
            rules_version=self.rules_now().version,
        )
        state.cadence = progress.model_copy(update={"due_at": now + HELD_TOUCH_RECHECK})
        state.last_error = f"touch {label} held: {reason}"
        state.note(now, "touch held", f"{label}: {reason} (sent once the rules change)")
        self.log.warning("touch held for lead %s: template error", state.lead_id)
        if earlier is None:
            self.report(facts.touch, progress, current.id, step, "held", reason, suffix=HELD_SUFFIX)

    def still_held(self, key: str, progress: CadenceProgress) -> bool:
        """Whether the held touch ``key`` stays held: nothing changed that could fix it."""
        state, held = self.state, self.state.held_touch
        if held is None or held.key != key or held.rules_version != self.rules_now().version:
            return False
        held.checks += 1
        state.cadence = progress.model_copy(update={"due_at": self.now() + HELD_TOUCH_RECHECK})
        return True

    def drop_held(self, why: str) -> None:
        """The cadence the held touch belongs to ends (a handoff, a new cadence): the touch
        is skipped, with its reason, rather than left waiting for ever."""
        state, held = self.state, self.state.held_touch
        if held is None:
            return
        state.held_touch = None
        state.touches_skipped += 1
        state.note(self.now(), "touch skipped", f"{held.label}: held touch dropped ({why})")
        self.report(facts.held_touch_dropped, held, why)

    def advance(self, progress: CadenceProgress, current: Cadence) -> None:
        state = self.state
        state.cadence = cadence.advance(progress, current, self.now())
        if state.cadence.parked:
            state.note(self.now(), "cadence", f"{current.id} finished: parked")

    def deferred(self, progress: CadenceProgress, current: Cadence, label: str) -> bool:
        """Hold the touch until the send window is open in the lead's time zone and the
        frequency cap allows another email; the step keeps its place, nothing is dropped."""
        state, book, now = self.state, self.rules_now().cadences, self.now()
        zone, zone_note = send_window.resolve_zone(state.profile.timezone, book.default_timezone)
        decision = send_window.next_send_time(
            now, book.window_for(current), zone, state.marketing_sends, book.frequency_cap
        )
        if decision.at <= now:
            return False
        state.cadence = progress.model_copy(update={"due_at": decision.at})
        state.touches_deferred += 1
        reasons = [*decision.reasons, *([zone_note] if zone_note else [])]
        state.note(
            now,
            "touch deferred",
            f"{label} to {decision.at:%Y-%m-%d %H:%M} UTC: {'; '.join(reasons)}",
        )
        return True

    # --- tasks: calls, voicemails, direct mail ---------------------------------------------

    def start_task(
        self, current: Cadence, progress: CadenceProgress, step: CadenceStep, label: str
    ) -> Step[None]:
        state, now = self.state, self.now()
        channel = step.channel
        assert channel != "email" and step.title is not None
        missing = missing_contact(channel, state.profile.phone, state.profile.address)
        if missing:
            state.touches_skipped += 1
            state.note(now, "touch skipped", f"{label}: {missing}")
            self.report(facts.touch, progress, current.id, step, "task_skipped", missing)
            self.advance(progress, current)
            return
        request = TaskRequest(
            key=cadence.touch_key(state.lead_id, progress, step),
            lead_id=state.lead_id,
            channel=channel,
            cadence=current.id,
            step=step.name,
            title=step.title,
            instructions=step.instructions,
            phone=state.profile.phone,
            address=state.profile.address,
            due_at=now + step.due_within,
            context=step_context(state, current.id, progress.cycle, step.name),
        )
        task_id: int | Failed = yield CreateTask(request)
        if isinstance(task_id, Failed):
            self.failed(f"{channel} task", task_id)
            self.report(facts.touch, progress, current.id, step, "failed", self.state.last_error)
            self.advance(progress, current)
            return
        state.tasks.append(
            TaskRef(
                key=request.key,
                id=task_id,
                channel=channel,
                cadence=current.id,
                step=step.name,
                due_at=request.due_at,
            )
        )
        del state.tasks[:-TASKS_KEPT]
        state.note(now, "task", f"{channel} task #{task_id} queued for {label}")
        self.report(facts.touch, progress, current.id, step, "task", f"task #{task_id}")
        if state.cadence is progress:
            state.cadence = progress.model_copy(
                update={"waiting_task": request.key, "due_at": request.due_at}
            )

    def close_task(
        self,
        key: str,
        status: Literal["done", "expired", "cancelled"],
        by: str,
        outcome: str | None = None,
        note: str | None = None,
    ) -> None:
        state, now = self.state, self.now()
        task = state.task(key)
        if task is not None:
            task.status, task.outcome, task.closed_by = status, outcome, by
        if status != "done":
            label = f"task #{task.id}" if task else "task"
            state.note(now, "task", f"{label} {status}")
        self.effects.append(
            TaskClosure(
                key=key,
                lead_id=state.lead_id,
                status=status,
                at=now,
                by=by,
                outcome=outcome,
                note=note,
            )
        )

    def complete_task(self, done: TaskCompletion) -> None:
        """A rep recorded a task's outcome: the task closes, the outcome is scored like any
        behaviour, and the cadence waiting on the task moves on."""
        state, now = self.state, self.now()
        task = state.task(done.task_key)
        assert task is not None  # task_completion_error checked it
        self.close_task(task.key, "done", by=done.rep, outcome=done.outcome, note=done.note)
        state.note(
            now, "task", f"{task.channel} task #{task.id} done by {done.rep}: {done.outcome}"
        )
        self.report(facts.task_done, task, done.outcome, done.rep)
        # The outcome is a behaviour like any other: scored, and it may make the lead sales-ready.
        self.inbox.append(
            LeadEvent(
                lead_id=state.lead_id,
                type=outcome_event_type(task.channel, done.outcome),
                at=now,
                event_id=f"task:{task.key}",
                props={"task": task.id, "by": done.rep},
            )
        )
        progress = state.cadence
        if progress is not None and progress.waiting_task == task.key:
            progress = state.cadence = progress.model_copy(update={"waiting_task": None})
            current = self.rules_now().cadences.get(progress.cadence_id)
            if current is not None:
                self.advance(progress, current)
            else:
                state.cadence = progress.model_copy(update={"due_at": now})

    def task_completion_error(self, done: TaskCompletion) -> str | None:
        """Why ``done`` cannot be recorded, or None."""
        rules = self.rules
        task = self.state.task(done.task_key)
        if rules is None or rules.routing.rep(done.rep) is None:
            return unknown_rep_error(done.rep)
        if task is None:
            return f"lead {self.state.lead_id} has no task {done.task_key!r}"
        if task.status == "done":
            return f"task #{task.id} is already done ({task.outcome} by {task.closed_by})"
        if task.status == "cancelled":
            return f"task #{task.id} was cancelled: the lead went to sales ({self.state.owner})"
        return outcome_error(task.channel, done.outcome)
