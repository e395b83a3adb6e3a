"""Keyed digests with the installation's salt: the suppression list's addresses and the
erasure receipts' lead references are stored as these, never in plain.

The salt is 32 random bytes made once per database (the first process that needs it inserts
it; a concurrent one reads the winner's) and kept in the ``installsalt`` table, so every worker,
service and command computes the same digest, and rotating the link-signing secret or the
master key never changes it (the suppression list would otherwise forget everyone on it).
Losing the table loses the list's meaning: back it up with the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from nurture.store.clock import utcnow

SALT_NAME = "digests"
DIGEST_HEX = 64


class InstallSalt(SQLModel, table=True):
    """A secret made once per database (hex), by name."""

    __tablename__ = "installsalt"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow)


def keyed_digest(salt: bytes, purpose: str, text: str) -> str:
    """HMAC-SHA256 of ``text`` under ``salt``, separated by ``purpose`` (an address digest never
    equals a lead id digest of the same text)."""
    return hmac.new(salt, f"{purpose}\x00{text}".encode(), hashlib.sha256).hexdigest()


def normalised_address(email: str) -> str:
    """How an address is compared: trimmed and lower-cased."""
    return email.strip().lower()


def address_digest(salt: bytes, email: str) -> str:
    return keyed_digest(salt, "email", normalised_address(email))


def lead_digest(salt: bytes, lead_id: str) -> str:
    return keyed_digest(salt, "lead", lead_id)


_cache: dict[str, bytes] = {}
_lock = threading.Lock()


def salt_of(engine: Engine) -> bytes:
    """The database's salt, made on first use (kept in memory per database URL afterwards)."""
    url = engine.url.render_as_string(hide_password=False)
    with _lock:
        if url in _cache:
            return _cache[url]
    with Session(engine) as session:
        row = session.get(InstallSalt, SALT_NAME)
        if row is None:
            session.add(InstallSalt(name=SALT_NAME, value=secrets.token_hex(32)))
            try:
                session.commit()
            except IntegrityError:  # another process made it first: use theirs
                session.rollback()
            row = session.get(InstallSalt, SALT_NAME)
        assert row is not None
        salt = bytes.fromhex(row.value)
    with _lock:
        _cache[url] = salt
    return salt
