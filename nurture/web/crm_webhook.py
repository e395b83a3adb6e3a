"""``POST /webhooks/crm``: the CRM tells us a rep changed a lead's status there.

A notification is taken in only if it is genuine, fresh, new and about the lead's current
hand-off:

* signed: ``X-Standin-Timestamp: <unix seconds>`` and ``X-Standin-Signature: sha256=<hex>``,
  the HMAC-SHA256 under ``NURTURE_CRM_WEBHOOK_SECRET`` of ``timestamp + "." + body`` (the
  scheme of Stripe and Slack), else 403;
* fresh: signed at most 5 minutes from now, else 403 (a captured post replayed later);
* new: its ``NotificationId`` is recorded once (``webhookpost``); the same notification again
  is answered 200 ``applied: false`` so an honest redelivery stops, and changes nothing;
* about this hand-off: ``Nurture_Handoff__c`` (the hand-off number Nurture wrote on the CRM
  record) must be the lead's current one, else 409: a "Closed - Not Converted" about an earlier
  hand-off must not recycle the lead's new one and blame its new owner.

The status becomes the same workflow update a rep action in Nurture would be, made as the
lead's current owner: "Working - Contacted" contacts, "Closed - Not Converted" rejects with
the CRM's reason, "Closed - Converted" is won. An action the lead's stage does not allow
(already applied, say) is answered 200 with ``applied: false``, so the CRM does not keep
redelivering something that can never apply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from nurture.client.sales import (
    LeadActionError,
    TemporalUnavailableError,
    UnknownLeadError,
    act,
    read_state,
)
from nurture.contract.messages import LeadState, OutcomeRequest, RejectRequest, RepAction
from nurture.contract.names import RepUpdate
from nurture.core import crm
from nurture.web.event_store import EventStore
from nurture.web.responses import errors
from nurture.web.sendgrid_webhook import read_limited

log = structlog.get_logger(__name__)
SIGNATURE_HEADER = "X-Standin-Signature"
TIMESTAMP_HEADER = "X-Standin-Timestamp"
MAX_AGE_SECONDS = 300
MAX_BODY_BYTES = 1024 * 1024


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    signed = timestamp.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


class CrmStatusChange(BaseModel):
    notification_id: str = Field(alias="NotificationId", min_length=1, max_length=200)
    lead_id: str = Field(alias="Nurture_Lead_Id__c", min_length=1)
    handoff: int | None = Field(
        default=None,
        alias=crm.HANDOFF_FIELD,
        ge=1,
        description="the hand-off Nurture wrote on the CRM record; the change is about that one "
        "(empty on records pushed before Nurture wrote it: then only a lead handed off once)",
    )
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
    store: EventStore
    max_age_seconds: int = MAX_AGE_SECONDS
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["crm"])
        router.add_api_route(
            "/webhooks/crm",
            self.receive,
            methods=["POST"],
            response_model=CrmAnswer,
            responses=errors(403, 404, 409, 413, 422, 503),
            summary="A rep changed a lead's status in the CRM (signed, timestamped, once)",
        )
        return router

    async def receive(self, request: Request) -> CrmAnswer:
        if not self.secret:
            raise HTTPException(403, "CRM notifications are off: set NURTURE_CRM_WEBHOOK_SECRET")
        body = await read_limited(request, MAX_BODY_BYTES)
        self._verify(
            body, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        )
        try:
            change = CrmStatusChange.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            raise HTTPException(422, f"not a CRM status change: {exc}") from None
        claim = _claim_key(change.notification_id)
        keep = timedelta(seconds=2 * self.max_age_seconds)  # past that, a replay is stale anyway
        if not await run_in_threadpool(self.store.claim_post, claim, keep):
            log.info("CRM notification already received", lead_id=change.lead_id)
            return CrmAnswer(
                lead_id=change.lead_id,
                action=None,
                applied=False,
                detail=f"notification {change.notification_id} was already received",
            )
        try:
            return await self._apply(change)
        except HTTPException as exc:
            if exc.status_code >= 500:  # not applied: let the CRM's redelivery in
                await run_in_threadpool(self.store.release_post, claim)
            raise

    def _verify(self, body: bytes, timestamp: str | None, signature: str | None) -> None:
        """403 unless the post is signed with our secret over its timestamp and body, and
        fresh."""
        assert self.secret is not None
        if not timestamp or not signature:
            raise HTTPException(
                403,
                f"unsigned post: the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are "
                "required",
            )
        if not re.fullmatch(r"[0-9]{1,12}", timestamp):
            raise HTTPException(403, f"bad {TIMESTAMP_HEADER}: expected unix seconds")
        expected = sign(self.secret, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise HTTPException(
                403, f"the {SIGNATURE_HEADER} does not match this timestamp and body"
            )
        age = self.clock() - int(timestamp)
        if abs(age) > self.max_age_seconds:
            raise HTTPException(
                403,
                f"stale post: signed {int(age)} s ago, more than the {self.max_age_seconds} s "
                "allowed (a replayed or badly delayed post)",
            )

    async def _apply(self, change: CrmStatusChange) -> CrmAnswer:
        try:
            state = await read_state(self.client, change.lead_id)
        except UnknownLeadError as exc:
            raise HTTPException(404, str(exc)) from None
        except TemporalUnavailableError:
            raise _retry_later() from None
        _refuse_other_handoff(change, state)
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


def _claim_key(notification_id: str) -> str:
    """The ``webhookpost`` key of a CRM notification (a digest: ids are the CRM's, any size,
    and must not collide with the SendGrid posts kept in the same table)."""
    return hashlib.sha256(b"crm\n" + notification_id.encode("utf-8")).hexdigest()


def _refuse_other_handoff(change: CrmStatusChange, state: LeadState) -> None:
    """409 for a change about another hand-off than the lead's current one.

    The workflow's updates do not take a hand-off number
    (``nurture.contract.messages.RepAction``), so the comparison is made here, against the
    lead's state just read."""
    if change.handoff is None:
        # A record pushed before Nurture wrote the field: unambiguous only for a lead that
        # was handed off once.
        if state.handoffs > 1:
            raise HTTPException(
                409,
                f"this change does not say which hand-off of lead {change.lead_id} it is about "
                f"({crm.HANDOFF_FIELD} is empty) and the lead was handed off {state.handoffs} "
                "times: not applied",
            )
        return
    if change.handoff != state.handoffs:
        raise HTTPException(
            409,
            f"this change is about hand-off {change.handoff} of lead {change.lead_id}, "
            f"which is on hand-off {state.handoffs} now: not applied",
        )


def _retry_later() -> HTTPException:
    return HTTPException(503, "Temporal is unavailable; deliver this change again later")


def _action(change: CrmStatusChange, owner: str | None) -> tuple[RepUpdate, RepAction] | None:
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
