"""Each lead's data key, wrapped by a master key (``nurture.privacy``).

A row holds the data key only in wrapped form (encrypted by the master key named beside it);
shredding a key blanks ``wrapped`` and stamps ``shredded_at``, after which nothing encrypted with
it can be read again. The row itself stays, so a payload naming the key is known to be shredded
rather than unknown.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from nurture.store.clock import utcnow


class DataKey(SQLModel, table=True):
    key_id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(index=True, max_length=220)
    """Whose payloads it encrypts: a lead's workflow id, or ``engine`` for payloads made
    outside any workflow."""
    master_key_id: str | None = Field(default=None, max_length=64)
    wrapped: str | None = None
    """The data key encrypted by the master key (base64); None once shredded."""
    created_at: datetime = Field(default_factory=utcnow)
    shredded_at: datetime | None = Field(default=None, index=True)
