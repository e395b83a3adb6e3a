"""The person's say over their email: the consent records a lead keeps, the topics they left
on the preferences page, and whether a cadence's email may go to them because of either.

The suppression list (unsubscribes, bounces, spam reports) is the lead's base
(``LeadBase.suppress_email``) and the email activity's last check; this part decides before
an email is asked for: a cadence with ``consent: required`` emails only leads with a consent
record, and a cadence's ``topic`` only leads that did not leave it. Unsubscribing from all is
the unsubscribe link's (``nurture/web/unsubscribe.py``), whichever page it is clicked on.
"""

from __future__ import annotations

from nurture.contract.messages import (
    CONSENTS_KEPT,
    SEEN_EVENT_IDS_KEPT,
    ConsentRecord,
    PreferenceChange,
    Preferences,
)
from nurture.core import facts
from nurture.core.base import LeadBase
from nurture.domain.leads import ConsentGiven, dedupe_marker
from nurture.domain.rules import Cadence


class Consent(LeadBase):
    """Consent records and topic preferences, and the touches they stop."""

    def record_consent(self, given: ConsentGiven) -> None:
        """Keep how and when the person agreed to be emailed (sent with a profile)."""
        state, now = self.state, self.now()
        record = ConsentRecord(
            **given.model_dump(exclude={"at"}), at=given.at or now, recorded_at=now
        )
        state.consents.append(record)
        del state.consents[:-CONSENTS_KEPT]
        shown = f", version {record.version}" if record.version else ""
        state.note(now, "consent", f"consent to email recorded ({record.source}{shown})")
        self.report(facts.consent, record)

    def why_not_emailed(self, current: Cadence) -> str | None:
        """Why ``current``'s email must not go to the lead (None: it may): its email is
        suppressed or unknown, the cadence requires consent and there is no record, or the
        person left the cadence's topic. Checked in this order: a skip's reason is the
        first that holds."""
        state = self.state
        if state.email_suppressed:
            return f"email suppressed ({state.email_suppressed})"
        if not state.profile.email:
            return "no email address on file"
        if current.consent == "required" and not state.consents:
            return f"no consent record (cadence {current.id} requires consent)"
        if state.topic_left(current.topic):
            return f"left topic {current.topic} on the preferences page"
        return None

    def known_topics(self) -> set[str]:
        """Topics a person may choose: those the cadences declare now, and any they left
        before a marketer removed it (so they can still come back to it)."""
        left = self.state.preferences.topics_left if self.state.preferences else []
        return {*self.rules_now().cadences.topics(), *left}

    def preference_error(self, change: PreferenceChange) -> str | None:
        """Why ``change`` cannot be applied, or None (an update's validator)."""
        if self.rules is None:
            return "the lead is starting: try again in a moment"
        unknown = sorted(set(change.topics_left) - self.known_topics())
        if unknown:
            return f"no cadence has the topic(s) {', '.join(unknown)}"
        return None

    def set_preferences(self, change: PreferenceChange) -> None:
        """The person chose, on the preferences page, the topics they do not want. A form
        sent twice (the same ``request_id``) changes the lead once."""
        state, now = self.state, self.now()
        marker = dedupe_marker(f"preferences:{change.request_id}")
        if marker in state.seen_event_markers:
            return
        state.seen_event_markers.append(marker)
        del state.seen_event_markers[:-SEEN_EVENT_IDS_KEPT]
        earlier = state.preferences or Preferences()
        before, after = set(earlier.topics_left), set(change.topics_left)
        state.preferences = Preferences(
            topics_left=sorted(after), changed_at=now, changes=earlier.changes + 1
        )
        left, rejoined = after - before, before - after
        parts = [f"left {', '.join(sorted(left))}"] if left else []
        parts += [f"back to {', '.join(sorted(rejoined))}"] if rejoined else []
        state.note(now, "preferences", "; ".join(parts) or "saved without a change")
        self.report(facts.topic_choices, left, rejoined)
