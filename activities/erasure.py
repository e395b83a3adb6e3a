"""The steps of an erasure (``workflows/erasure.py``), each safe to run again.

Results are counts, never addresses: nothing personal enters the erasure's history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from python_http_client.exceptions import HTTPError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.crm import CrmClient
from activities.email import Mailer, classify
from nurture.client.sales import query_state
from nurture.config.settings import CrmSettings
from nurture.contract.erasure import (
    DELETE_FROM_CRM,
    ERASE_ADDRESSES,
    KEEP_RECEIPT,
    PSEUDONYMISE,
    SHRED_KEYS,
    TERMINATE_LEAD,
    AddressesErased,
    ErasureReceiptFields,
    LeadRef,
    PseudonymiseRequest,
)
from nurture.contract.names import FORGET_SIGNAL, STATE_QUERY
from nurture.privacy import key_store, pseudonymise
from nurture.privacy.codec import EnvelopeCodec
from nurture.privacy.erasure import lead_status
from nurture.store import erasure_receipts, suppression
from nurture.store.db import OutboxMessage
from nurture.store.read_model import LeadRecord
from nurture.store.salted import normalised_address

log = structlog.get_logger(__name__)

ERASED = "erased"
QUERY_TIMEOUT = 10.0
FORGET_WAIT = 10.0


class ErasureActivities:
    def __init__(
        self, client: Client, engine: Engine, mailer: Mailer, crm: CrmSettings | None
    ) -> None:
        self.client = client
        self.engine = engine
        self.mailer = mailer
        self.crm = CrmClient(crm) if crm else None
        # The keys this worker's payloads are encrypted with: where they are kept (our
        # database, or one of their own) is the codec's.
        codec = client.data_converter.payload_codec
        self.keys = codec.store if isinstance(codec, EnvelopeCodec) else None

    @activity.defn(name=ERASE_ADDRESSES)
    async def erase_addresses(self, lead: LeadRef) -> AddressesErased:
        """Every address of the lead (its profile now, the read model, the touches sent) on
        the suppression list, then SendGrid's erasure, then provider events naming them
        cleared: in that order, so a retry after a crash still finds the addresses."""
        addresses = await self._addresses(lead)
        done = AddressesErased(addresses=len(addresses))
        for address in addresses:
            added = await asyncio.to_thread(
                suppression.suppress, self.engine, address, ERASED, "erasure"
            )
            done.newly_suppressed += int(added)
        if addresses:
            done.provider_erasure_requests = await asyncio.to_thread(
                self._erase_at_provider, sorted(addresses)
            )
        done.webhook_events = await asyncio.to_thread(
            pseudonymise.forget_addresses, self.engine, addresses
        )
        self._log(lead).info("addresses suppressed and erased", **done.model_dump())
        return done

    async def _addresses(self, lead: LeadRef) -> set[str]:
        found = set(await asyncio.to_thread(self._stored_addresses, lead.lead_id))
        if await lead_status(self.client, lead.lead_id) == WorkflowExecutionStatus.RUNNING:
            # its profile now (the read model may be behind); a failure is retried
            handle = self.client.get_workflow_handle(lead.workflow_id)
            state = await asyncio.wait_for(query_state(handle), QUERY_TIMEOUT)
            if state.profile.email:
                found.add(normalised_address(state.profile.email))
        return found

    def _stored_addresses(self, lead_id: str) -> list[str]:
        """The lead's address in the read model and every address a touch went to (rep
        alerts go to reps: not theirs)."""
        with Session(self.engine) as session:
            row = session.get(LeadRecord, lead_id)
            sent = session.exec(
                select(OutboxMessage.to_email).where(
                    col(OutboxMessage.lead_id) == lead_id, col(OutboxMessage.category) == "touch"
                )
            ).all()
        found = [*sent, row.email] if row is not None and row.email else list(sent)
        return [normalised_address(a) for a in found if a]

    def _erase_at_provider(self, addresses: list[str]) -> int:
        """1 when SendGrid took the erasure job; 0 when it refused it for good (e.g. the key
        lacks the ``recipients.erasejob.create`` scope: logged, the erasure goes on)."""
        try:
            job = self.mailer.erase_recipients(addresses)
        except HTTPError as exc:
            error = classify(exc)
            if not error.non_retryable:
                raise error from exc
            # The status alone: SendGrid's answer may quote the addresses.
            log.warning("SendGrid refused the erasure job", status=getattr(exc, "status_code", 0))
            return 0
        log.info("SendGrid erasure job accepted", job_id=job)
        return 1

    @activity.defn(name=TERMINATE_LEAD)
    async def terminate_lead(self, lead: LeadRef) -> bool:
        """Tell the lead it is forgotten (a worker holding it in memory then refuses its state
        query), then terminate its workflow; False when it was not running (closed, or never
        started)."""
        handle = self.client.get_workflow_handle(lead.workflow_id)
        try:
            await handle.signal(FORGET_SIGNAL)
            await self._until_forgotten(handle)
            await handle.terminate(reason=ERASED)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        self._log(lead).info("lead workflow terminated")
        return True

    async def _until_forgotten(self, handle: WorkflowHandle[Any, Any]) -> None:
        """Until the lead took the signal in (its state query is refused), for at most
        ``FORGET_WAIT`` seconds: a lead whose workflow tasks fail is terminated all the same."""
        deadline = asyncio.get_running_loop().time() + FORGET_WAIT
        while asyncio.get_running_loop().time() < deadline:
            try:
                await asyncio.wait_for(handle.query(STATE_QUERY), FORGET_WAIT)
            except (WorkflowQueryFailedError, TimeoutError):
                return
            await asyncio.sleep(0.1)

    @activity.defn(name=DELETE_FROM_CRM)
    def delete_from_crm(self, lead: LeadRef) -> int:
        """Delete the lead from the CRM, where this worker has one; how many records."""
        if self.crm is None:
            return 0
        return int(self.crm.delete_lead(lead.lead_id))

    @activity.defn(name=SHRED_KEYS)
    async def shred_keys(self, lead: LeadRef) -> int:
        """Destroy the lead's data keys: its histories can never be decrypted again.

        An event that reached the lead after it was terminated started a new run, encrypted
        with the key being destroyed here: that run could never be read, and would fail every
        workflow task for good. Once every process has let go of the key (a process notices
        a shredded key within a second), a run still going is such a run: it is terminated
        too (the events it holds are the erased person's)."""
        if self.keys is None:  # a worker without the codec writes plain histories
            self._log(lead).warning("no payload codec: no data keys to shred")
            return 0
        shredded = await asyncio.to_thread(key_store.shred_keys, self.keys.engine, lead.workflow_id)
        self.keys.forget(lead.workflow_id)
        await asyncio.sleep(key_store.CHECK_SHREDDED_EVERY * 2)
        if await lead_status(self.client, lead.lead_id) == WorkflowExecutionStatus.RUNNING:
            handle = self.client.get_workflow_handle(lead.workflow_id)
            try:
                await handle.terminate(reason=f"{ERASED}: started while it was being erased")
                self._log(lead).warning("a run started during the erasure was terminated")
            except RPCError as exc:  # it closed meanwhile
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        self._log(lead).info("data keys shredded", keys=shredded)
        return shredded

    @activity.defn(name=PSEUDONYMISE)
    def pseudonymise_rows(self, request: PseudonymiseRequest) -> dict[str, int]:
        return pseudonymise.pseudonymise(self.engine, request.lead_id, request.pseudonym)

    @activity.defn(name=KEEP_RECEIPT)
    def keep_receipt(self, receipt: ErasureReceiptFields) -> ErasureReceiptFields:
        return erasure_receipts.keep_receipt(self.engine, receipt)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.erase_addresses,
            self.terminate_lead,
            self.delete_from_crm,
            self.shred_keys,
            self.pseudonymise_rows,
            self.keep_receipt,
        ]

    @staticmethod
    def _log(lead: LeadRef) -> structlog.typing.FilteringBoundLogger:
        # The lead id, as every other activity logs it; never an address.
        return log.bind(lead_id=lead.lead_id, workflow_id=activity.info().workflow_id)
