"""Every rules version the workers loaded: when first, who changed it, and what changed from
the version before (``nurture rules history``, the returns report's threshold changes).

A version is recorded once (by its content hash), by whichever worker or service loads it
first; its snapshot (``nurture.domain.rules_diff``) is kept so the next version can say what
changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from nurture.domain.rules_diff import describe_changes


class RulesVersionRecord(SQLModel, table=True):
    __tablename__ = "rulesversion"

    version: str = Field(primary_key=True, max_length=100)
    first_loaded_at: datetime = Field(index=True)
    author: str = Field(max_length=300)
    previous: str | None = Field(default=None, max_length=100)
    changes: str
    """JSON list of lines: what changed from ``previous``"""
    snapshot: str
    """JSON object: every setting's path and value (``nurture.domain.rules_diff``)"""


@dataclass(frozen=True)
class RulesVersion:
    version: str
    first_loaded_at: datetime
    author: str
    previous: str | None
    changes: list[str]
    snapshot: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "first_loaded_at": self.first_loaded_at.isoformat(),
            "author": self.author,
            "previous": self.previous,
            "changes": self.changes,
        }


def is_recorded(engine: Engine, version: str) -> bool:
    with Session(engine) as session:
        return session.get(RulesVersionRecord, version) is not None


def record_version(
    engine: Engine, version: str, snapshot: dict[str, str], author: str, at: datetime
) -> bool:
    """Record ``version`` unless it is known; False when it was. What changed is said against
    the newest version recorded before it."""
    with Session(engine) as session:
        if session.get(RulesVersionRecord, version) is not None:
            return False
        last = session.exec(
            select(RulesVersionRecord).order_by(col(RulesVersionRecord.first_loaded_at).desc())
        ).first()
        before = json.loads(last.snapshot) if last is not None else None
        changes = describe_changes(before, snapshot) if before is not None else ["first version"]
        session.add(
            RulesVersionRecord(
                version=version,
                first_loaded_at=at,
                author=author[:300],
                previous=last.version if last is not None else None,
                changes=json.dumps(changes),
                snapshot=json.dumps(snapshot, sort_keys=True),
            )
        )
        try:
            session.commit()
        except IntegrityError:  # another worker recorded it at the same moment
            return False
        return True


def rules_history(engine: Engine) -> list[RulesVersion]:
    """Every version recorded, newest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(RulesVersionRecord).order_by(col(RulesVersionRecord.first_loaded_at).desc())
        ).all()
    return [
        RulesVersion(
            version=r.version,
            first_loaded_at=r.first_loaded_at,
            author=r.author,
            previous=r.previous,
            changes=json.loads(r.changes),
            snapshot=json.loads(r.snapshot),
        )
        for r in rows
    ]
