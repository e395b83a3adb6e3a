"""API keys per role for the HTTP service.

A key reads ``nk_<id>_<secret>``: the id finds the row, the secret is compared with the stored
SHA-256 hash in constant time. The secret is 32 random bytes, so a fast hash is enough (no
password stretching is needed for a secret nobody chose). Roles:

- ``ingest``: tracking — send events and profiles;
- ``marketer``: ingest, import leads, read any lead;
- ``rep``: bound to one rep id — read and act on that rep's own leads, complete tasks;
- ``operator``: everything, acting for a named rep.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from nurture.store.db import ApiKey

Role = Literal["ingest", "marketer", "rep", "operator"]
ROLES: tuple[Role, ...] = get_args(Role)

# Who may do what over HTTP, in one place (the README's 'nurture keys create' lines say it too).
SEND_LEADS: tuple[Role, ...] = ("ingest", "marketer", "operator")
"""Send events and profiles (a website tracker, a form, a marketing tool)."""
MARKETING: tuple[Role, ...] = ("marketer", "operator")
"""Import leads from CSV, read reports and the dashboard's charts, enter campaign costs."""
READ_LEADS: tuple[Role, ...] = ("rep", "marketer", "operator")
"""Read a lead (a rep: its own leads only)."""
ACT_ON_LEADS: tuple[Role, ...] = ("rep", "operator")
"""Accept, contact, reject, close a lead, work the task queue (an operator names the rep)."""
ERASE_LEADS: tuple[Role, ...] = ("operator",)
"""Erase a lead's personal data for good (``DELETE /api/leads/{id}``)."""
PERSONAL_DATA: tuple[Role, ...] = ("operator",)
"""Export everything held on a person (all their personal data at once)."""
KEY_PATTERN = re.compile(r"nk_([a-z0-9]{10})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and name, its role, and for a rep, which rep."""

    key_id: str
    name: str
    role: Role
    rep_id: str | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    engine: Engine, role: Role, name: str, rep_id: str | None = None
) -> tuple[ApiKey, str]:
    """Store a new key; return its row and the key itself (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if (role == "rep") != (rep_id is not None):
        raise ValueError("a rep key needs --rep (the rep id it acts as); other roles take none")
    key_id = secrets.token_hex(5)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(id=key_id, name=name, role=role, rep_id=rep_id, secret_hash=_hash(secret))
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return row, f"nk_{key_id}_{secret}"


def authenticate(engine: Engine, presented: str) -> Principal | None:
    """The principal for a presented key, or None for a malformed, unknown or revoked one."""
    match = KEY_PATTERN.fullmatch(presented.strip())
    if match is None:
        return None
    key_id, secret = match.groups()
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(secret)):
        return None
    return Principal(key_id=row.id, name=row.name, role=row.role, rep_id=row.rep_id)  # type: ignore[arg-type]


def list_keys(engine: Engine) -> list[ApiKey]:
    with Session(engine) as session:
        return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))).all())


def revoke_key(engine: Engine, key_id: str) -> bool:
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            return False
        row.revoked_at = row.revoked_at or datetime.now(UTC)
        session.add(row)
        session.commit()
        return True
