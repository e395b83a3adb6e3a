"""The global do-not-email list, by keyed digest of the address (``nurture.store.salted``).

Every place that checks or adds an address goes through here: the send activity, the
webhook and unsubscribe links, erasure, and the start of a new lead (a re-imported address of
a forgotten person starts suppressed).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from nurture.store.db import Suppression
from nurture.store.salted import address_digest, normalised_address, salt_of

EMAIL_MAX = 320  # the longest address we ever send to (RFC 5321 allows 254)


def find(engine: Engine, email: str) -> Suppression | None:
    """The list's entry for ``email``, if it is on the list."""
    with Session(engine) as session:
        return session.get(Suppression, address_digest(salt_of(engine), email))


def why_suppressed(engine: Engine, email: str | None) -> str | None:
    """``"erased (erasure)"``-style reason when ``email`` is on the list, else None."""
    if not email:
        return None
    entry = find(engine, email)
    return None if entry is None else f"{entry.reason} ({entry.source})"


def suppress(
    engine: Engine, email: str, reason: str, source: str, lead_id: str | None = None
) -> bool:
    """Put the address on the list (the first reason is kept); True when it was added."""
    address = normalised_address(email)
    if not address or len(address) > EMAIL_MAX:
        return False
    digest = address_digest(salt_of(engine), address)
    with Session(engine) as session:
        if session.get(Suppression, digest) is not None:
            return False
        session.add(
            Suppression(email_hash=digest, reason=reason[:40], source=source[:40], lead_id=lead_id)
        )
        try:
            session.commit()
        except IntegrityError:  # the same address added at the same moment
            session.rollback()
            return False
    return True
