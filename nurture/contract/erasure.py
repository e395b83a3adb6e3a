"""What crosses the erasure workflow's boundary: its names, its request, its steps' inputs and
results, and the receipt it leaves (``workflows/erasure.py``, ``activities/erasure.py``).

No personal data in any name: the erasure's workflow id is made from the keyed digest of the
lead id (``nurture.store.salted.lead_digest``), so asking twice for one lead joins the first
erasure and nothing in visibility names the lead.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from pydantic import BaseModel, Field
from sqlmodel import SQLModel

ERASURE_WORKFLOW: Final = "LeadErasure"
ERASE_ADDRESSES: Final = "erasure_addresses"
TERMINATE_LEAD: Final = "erasure_terminate_lead"
DELETE_FROM_CRM: Final = "erasure_crm_delete"
SHRED_KEYS: Final = "erasure_shred_keys"
PSEUDONYMISE: Final = "erasure_pseudonymise"
KEEP_RECEIPT: Final = "erasure_receipt"


REASON_MAX: Final = 500
"""The longest reason an erasure takes (kept on its receipt), from the CLI as from the API."""
ERASED_PREFIX: Final = "erased-"
"""How an erased lead's pseudonym begins (what its read-model rows carry instead of its id)."""


def erasure_workflow_id(lead_ref: str) -> str:
    """The one erasure of a lead at a time: a second request joins the running one."""
    return f"erasure-{lead_ref[:40]}"


class ErasureRequest(BaseModel):
    lead_id: str
    lead_ref: str
    """The keyed digest of ``lead_id``: what the receipt names the lead by."""
    requested_by: str
    reason: str | None = None
    requested_at: datetime
    step_timeout: timedelta = timedelta(seconds=60)
    """How long one step may run before it is tried again (e.g. on another worker, after the
    one running it died)."""


class LeadRef(BaseModel):
    """A step's input: the lead being erased."""

    lead_id: str
    workflow_id: str


class AddressesErased(BaseModel):
    """What the first step did with the lead's addresses (how many, never which)."""

    addresses: int = 0
    newly_suppressed: int = 0
    webhook_events: int = 0
    provider_erasure_requests: int = 0


class PseudonymiseRequest(BaseModel):
    lead_id: str
    pseudonym: str


class ErasureReceiptFields(SQLModel):
    """What an erasure's receipt says, as the workflow returns it and the ``erasurereceipt``
    row keeps it (``nurture.store.erasure_receipts``). No personal data."""

    erasure_id: str
    lead_ref: str
    requested_at: datetime
    finished_at: datetime
    requested_by: str
    reason: str | None = None
    erased: dict[str, int] = Field(default_factory=dict)
    """How many of each kind: read-model rows per table, data keys, addresses, CRM records."""
