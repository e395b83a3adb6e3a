"""What a lead looks like in a Salesforce-shaped CRM: standard Lead fields from our state.
Plain functions, called by the workflow when it queues a CRM push."""

from __future__ import annotations

from typing import Any

from nurture.contract.messages import LeadState
from nurture.domain.rules import RoutingRules

OPEN = "Open - Not Contacted"
WORKING = "Working - Contacted"
CONVERTED = "Closed - Converted"
NOT_CONVERTED = "Closed - Not Converted"
HANDOFF_FIELD = "Nurture_Handoff__c"


def lead_fields(state: LeadState, routing: RoutingRules, status: str) -> dict[str, Any]:
    """The Lead record: who, where from, how hot, whose, and the story in Description."""
    profile, crm = state.profile, routing.crm
    owner = routing.rep(state.owner) if state.owner else None
    fields: dict[str, Any] = {
        "FirstName": profile.first_name,
        "LastName": profile.last_name or profile.first_name or profile.email or profile.lead_id,
        "Company": profile.company or "(not given)",
        "Title": profile.title,
        "Email": profile.email,
        "Phone": profile.phone,
        "LeadSource": profile.campaign or crm.lead_source,
        "Rating": crm.ratings.get(state.grade),
        "Status": status,
        "Description": story_text(state),
        # Which hand-off the record is about: a status change made in the CRM carries it back,
        # so one about an earlier hand-off is refused (nurture.web.crm_webhook).
        HANDOFF_FIELD: state.handoffs or None,
    }
    if owner is not None and owner.crm_user_id:
        fields["OwnerId"] = owner.crm_user_id
    return {k: v for k, v in fields.items() if v is not None}


def story_text(state: LeadState) -> str:
    lines = [f"Nurture score {state.score.total}, grade {state.grade}."]
    if state.handoff:
        story = state.handoff.story
        lines.append(f"Sales-ready because: {story.qualified_by}.")
        if story.campaign:
            lines.append(f"Campaign: {story.campaign}.")
        lines += [
            f"- {rule}: {points:+d} ({times}x)" for rule, points, times in story.top_behaviours
        ]
    if state.rejections:
        last = state.rejections[-1]
        lines.append(f"Last returned by {last.rep}: {last.reason}")
    return "\n".join(lines)[:32000]
