"""``POST /webhooks/crm``: the CRM tells us a rep changed a lead's status there.

The post is HMAC-signed (``X-Standin-Signature: sha256=<hex>`` over the body, with
``NURTURE_CRM_WEBHOOK_SECRET``). The status becomes the same workflow update a rep action in
Nurture would be, made as the lead's current owner: "Working - Contacted" contacts,
"Closed - Not Converted" rejects with the CRM's reason, "Closed - Converted" is won. An action
the lead's stage does not allow (already applied, say) is answered 200 with ``applied: false``,
so the CRM does not keep redelivering something that can never apply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

import structlog
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import Client

from nurture import crm
from nurture.messages import OutcomeRequest, RejectRequest, RepAction
from nurture.sales import (
    ActionName,
    LeadActionError,
    TemporalUnavailableError,
    UnknownLeadError,
    act,
    read_state,
)
from nurture.web.responses import errors
from nurture.web.sendgrid_webhook import read_limited

log = structlog.get_logger(__name__)
SIGNATURE_HEADER = "X-Standin-Signature"


class CrmStatusChange(BaseModel):
    lead_id: str = Field(alias="Nurture_Lead_Id__c", min_length=1)
    status: str = Field(alias="Status")
    reason: str | None = Field(default=None, alias="Reason")


class CrmAnswer(BaseModel):
    lead_id: str
    action: str | None
    applied: bool
    detail: str | None = None


@dataclass
class CrmWebhook:
    client: Client
    secret: str | None

    def router(self) -> APIRouter:
        router = APIRouter(tags=["crm"])
        router.add_api_route(
            "/webhooks/crm",
            self.receive,
            methods=["POST"],
            response_model=CrmAnswer,
            responses=errors(403, 404, 413, 422, 503),
            summary="A rep changed a lead's status in the CRM (HMAC-signed)",
        )
        return router

    async def receive(self, request: Request) -> CrmAnswer:
        if not self.secret:
            raise HTTPException(403, "CRM notifications are off: set NURTURE_CRM_WEBHOOK_SECRET")
        body = await read_limited(request, 1024 * 1024)
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        given = request.headers.get(SIGNATURE_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode(), given):
            raise HTTPException(403, f"the {SIGNATURE_HEADER} does not match this body")
        try:
            change = CrmStatusChange.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            raise HTTPException(422, f"not a CRM status change: {exc}") from None
        try:
            state = await read_state(self.client, change.lead_id)
        except UnknownLeadError as exc:
            raise HTTPException(404, str(exc)) from None
        except TemporalUnavailableError:
            raise _retry_later() from None
        action = _action(change, state.owner)
        if action is None or state.owner is None:
            why = "no owner in Nurture" if state.owner is None else f"status {change.status!r}"
            return CrmAnswer(lead_id=change.lead_id, action=None, applied=False, detail=why)
        name, rep_action = action
        try:
            if name == "outcome" and state.stage == "assigned":
                # Converted straight from "Open": it was contacted, then won.
                await act(
                    self.client,
                    change.lead_id,
                    "contact",
                    RepAction(rep=state.owner, from_crm=True),
                )
            result = await act(self.client, change.lead_id, name, rep_action)
        except TemporalUnavailableError:
            # Not applied and not refused: the CRM must deliver it again.
            raise _retry_later() from None
        except LeadActionError as exc:
            log.warning("CRM change not applied", lead_id=change.lead_id, reason=str(exc))
            return CrmAnswer(lead_id=change.lead_id, action=name, applied=False, detail=str(exc))
        log.info("CRM change applied", lead_id=change.lead_id, action=name, stage=result.stage)
        return CrmAnswer(lead_id=change.lead_id, action=name, applied=True)


def _retry_later() -> HTTPException:
    return HTTPException(503, "Temporal is unavailable; deliver this change again later")


def _action(change: CrmStatusChange, owner: str | None) -> tuple[ActionName, RepAction] | None:
    if owner is None:
        return None
    if change.status == crm.WORKING:
        return "contact", RepAction(rep=owner, from_crm=True, note="in the CRM")
    if change.status == crm.NOT_CONVERTED:
        reason = (change.reason or "").strip() or "closed as not converted in the CRM"
        return "reject", RejectRequest(rep=owner, reason=reason, from_crm=True)
    if change.status == crm.CONVERTED:
        return "outcome", OutcomeRequest(rep=owner, result="won", from_crm=True)
    return None
