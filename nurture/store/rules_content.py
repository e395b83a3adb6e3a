"""Every rules version's content, by version, for workers that meet a version in a lead's
history they never loaded (``nurture.contract.shared_rules``): leads record the version, not
the rules. Kept once, by the first process to load it; never changed, never deleted (a history
naming it may be replayed for as long as its lead lives).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from nurture.domain.rules import Rules


class RulesContentRecord(SQLModel, table=True):
    __tablename__ = "rulescontent"

    version: str = Field(primary_key=True, max_length=100)
    content: str
    """The rules as JSON (``Rules.model_dump_json``), as leads are handed them"""


def keep_rules(engine: Engine, rules: Rules) -> None:
    """Keep ``rules`` under their version unless they are kept (safe from several processes)."""
    with Session(engine) as session:
        if session.get(RulesContentRecord, rules.version) is not None:
            return
        session.add(RulesContentRecord(version=rules.version, content=rules.model_dump_json()))
        try:
            session.commit()
        except IntegrityError:  # another process kept them first: the same content
            session.rollback()


def kept_rules(engine: Engine, version: str) -> Rules | None:
    with Session(engine) as session:
        row = session.get(RulesContentRecord, version)
    return None if row is None else Rules.model_validate_json(row.content)
