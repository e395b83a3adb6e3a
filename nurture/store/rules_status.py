"""Which rules version the workers use, and the last edit they refused, for marketers to see.

Workers record it here (one row in the engine database) when they load a version or refuse
an edit; ``nurture config status`` and the dashboard read it with :func:`read_rules_status`.
A refused edit was logged by the worker only until now: a marketer never saw it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

from nurture.store.clock import utcnow

log = structlog.get_logger(__name__)

ROW = "rules"
"""Every worker of one engine database shares the rules; the row says what the last one saw."""
MAX_PROBLEMS = 200


class RulesStatusRecord(SQLModel, table=True):
    __tablename__ = "rulesstatus"

    name: str = Field(primary_key=True, max_length=50)
    version: str = Field(max_length=100)
    loaded_at: datetime
    config_dir: str
    templates_dir: str | None = None
    rejected_at: datetime | None = None
    rejected_problems: str | None = None
    """JSON list of every problem of the last refused edit (file:line: what)."""
    updated_at: datetime = Field(default_factory=utcnow)


@dataclass(frozen=True)
class RulesStatus:
    """The rules version in force, when it was loaded, and the last refused edit."""

    version: str
    loaded_at: datetime
    config_dir: str
    templates_dir: str | None
    rejected_at: datetime | None
    rejected_problems: list[str]

    @property
    def rejection_pending(self) -> bool:
        """The newest edit was refused: what marketers saved is not what is being sent."""
        return self.rejected_at is not None and self.rejected_at >= self.loaded_at

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "loaded_at": self.loaded_at.isoformat(),
            "config_dir": self.config_dir,
            "templates_dir": self.templates_dir,
            "last_rejected_edit": None
            if self.rejected_at is None
            else {
                "at": self.rejected_at.isoformat(),
                "pending": self.rejection_pending,
                "problems": self.rejected_problems,
            },
        }


def record_loaded(
    engine: Engine,
    version: str,
    loaded_at: datetime,
    config_dir: str,
    templates_dir: str | None,
    name: str = ROW,
) -> None:
    """A worker now uses ``version`` (at start, or after a valid edit). ``name``: which
    files (the rules, or the HTTP service's ``forms``)."""
    with Session(engine) as session:
        row = session.get(RulesStatusRecord, name) or RulesStatusRecord(
            name=name, version=version, loaded_at=loaded_at, config_dir=config_dir
        )
        row.version, row.loaded_at = version, loaded_at
        row.config_dir, row.templates_dir = config_dir, templates_dir
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


def record_rejected(engine: Engine, at: datetime, problems: list[str], name: str = ROW) -> None:
    """A worker refused an edit and keeps the version in force; every problem is kept."""
    with Session(engine) as session:
        row = session.get(RulesStatusRecord, name)
        if row is None:  # a worker records its load first; nothing to attach the edit to
            return
        row.rejected_at = at
        row.rejected_problems = json.dumps(problems[:MAX_PROBLEMS])
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


@dataclass(frozen=True)
class InForce:
    """The version of some config files a process uses: what :func:`record_status` keeps."""

    name: str
    version: str
    loaded_at: datetime
    config_dir: str
    templates_dir: str | None = None


def record_status(engine: Engine, in_force: InForce, rejected: list[str] | None = None) -> None:
    """Record the version in force, or (``rejected``) an edit refused with its problems.
    Never raises: the status is for people, and leads and forms go on without it."""
    try:
        if rejected is None:
            record_loaded(
                engine,
                in_force.version,
                in_force.loaded_at,
                in_force.config_dir,
                in_force.templates_dir,
                name=in_force.name,
            )
        else:
            record_rejected(engine, utcnow(), rejected, name=in_force.name)
    except Exception:
        log.exception("could not record the status of the config files", files=in_force.name)


def read_rules_status(engine: Engine, name: str = ROW) -> RulesStatus | None:
    """What the workers recorded, or None before any worker ran on this database."""
    with Session(engine) as session:
        row = session.get(RulesStatusRecord, name)
        if row is None:
            return None
        return RulesStatus(
            version=row.version,
            loaded_at=_aware(row.loaded_at),
            config_dir=row.config_dir,
            templates_dir=row.templates_dir,
            rejected_at=_aware(row.rejected_at) if row.rejected_at else None,
            rejected_problems=json.loads(row.rejected_problems or "[]"),
        )


def _aware(at: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were written in UTC."""
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)
