"""The inside-sales queue: call, voicemail and direct-mail tasks, created and closed once."""

from __future__ import annotations

from pathlib import Path

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from nurture.config.templating import (
    TemplateProblem,
    TemplateSet,
    TemplateSource,
    render_text,
    template_source,
)
from nurture.contract.messages import CLOSE_TASK, CREATE_TASK, TaskClosure, TaskRequest
from nurture.store.db import SalesTask

log = structlog.get_logger(__name__)


class TaskActivities:
    def __init__(self, engine: Engine, templates: Path | TemplateSet | TemplateSource) -> None:
        self.engine = engine
        self.templates = template_source(templates)

    @activity.defn(name=CREATE_TASK)
    def create_task(self, request: TaskRequest) -> int:
        """Queue the task; a retry finds the row by its key and returns the same task id."""
        env = self.templates.templates().environment  # the sandbox with its limits
        try:
            title = render_text(env, request.title, request.context, "title")
            instructions = render_text(env, request.instructions, request.context, "instructions")
        except TemplateProblem as exc:
            raise ApplicationError(str(exc), type="TemplateError", non_retryable=True) from exc
        with Session(self.engine) as session:
            existing = self._by_key(session, request.key)
            if existing is not None:
                assert existing.id is not None
                return existing.id
            row = SalesTask(
                key=request.key,
                lead_id=request.lead_id,
                channel=request.channel,
                cadence=request.cadence,
                step=request.step,
                title=title,
                instructions=instructions,
                phone=request.phone,
                address=request.address,
                due_at=request.due_at,
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # a concurrent retry inserted it first
                session.rollback()
                existing = self._by_key(session, request.key)
                assert existing is not None and existing.id is not None
                return existing.id
            session.refresh(row)
            assert row.id is not None
            log.info(
                "task queued",
                lead_id=request.lead_id,
                workflow_id=activity.info().workflow_id,
                task_id=row.id,
                channel=request.channel,
            )
            return row.id

    @activity.defn(name=CLOSE_TASK)
    def close_task(self, closure: TaskClosure) -> None:
        """Record how the task ended. Idempotent: closing it the same way again changes
        nothing; a late outcome overrides an 'expired' or 'cancelled'."""
        with Session(self.engine) as session:
            row = self._by_key(session, closure.key)
            if row is None or row.status == "done":
                return
            row.status = closure.status
            row.closed_at = closure.at
            row.closed_by = closure.by
            row.outcome = closure.outcome
            row.note = closure.note
            session.add(row)
            session.commit()

    @staticmethod
    def _by_key(session: Session, key: str) -> SalesTask | None:
        return session.exec(select(SalesTask).where(SalesTask.key == key)).first()
