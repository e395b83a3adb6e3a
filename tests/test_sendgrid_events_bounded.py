"""SendGrid's reports on our own emails are never refused, but what they echo (a click's URL,
a bounce reason) is cut to what a lead's signal takes at the edge (issue 13, finding 13/14: an
accepted webhook must never carry a payload the lead cannot apply)."""

from __future__ import annotations

from nurture.domain.leads import URL_MAX, LeadEvent
from nurture.web.sendgrid_webhook import WEBHOOK_TEXT_MAX, to_lead_event


def test_a_huge_click_url_and_reason_are_cut_and_cleaned_not_refused() -> None:
    item = {
        "sg_event_id": "e1",
        "lead_id": "ada",
        "timestamp": 1_764_000_000,
        "url": "https://x.example/" + "a" * 200_000,
        "reason": "bounced\x00" + "b" * 50_000,
        "touch_id": "t1",
    }
    event = to_lead_event(item, "email_click")
    assert event.url is not None and len(event.url) == URL_MAX
    assert len(event.props["reason"]) == WEBHOOK_TEXT_MAX
    assert "\x00" not in event.props["reason"]
    # What the lead receives validates under the same bounds the HTTP edge applies.
    LeadEvent.from_edge(event.model_dump(mode="json"))
