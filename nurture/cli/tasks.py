"""``nurture tasks``: the inside-sales queue of calls, voicemails and direct mail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlmodel import Session, col, select

from nurture.cli.output import JsonOpt, connect_client, console, fail, print_json, run, table
from nurture.client.sales import LeadActionError, act
from nurture.contract.messages import TaskCompletion
from nurture.domain.tasks import TASK_CHANNELS, outcome_error
from nurture.store.db import SalesTask, database_url_from_env, make_engine

tasks_app = typer.Typer(no_args_is_help=True, help="Inside-sales tasks: calls, voicemails, mail.")


def _load(status: str | None, channel: str | None, lead: str | None) -> list[SalesTask]:
    engine = make_engine(database_url_from_env())
    query = select(SalesTask).order_by(col(SalesTask.due_at), col(SalesTask.id))
    if status and status != "all":
        query = query.where(SalesTask.status == status)
    if channel:
        query = query.where(SalesTask.channel == channel)
    if lead:
        query = query.where(SalesTask.lead_id == lead)
    with Session(engine) as session:
        return list(session.exec(query).all())


@tasks_app.command("list")
def list_tasks(
    status: Annotated[str, typer.Option(help="open, done, expired, cancelled or all")] = "open",
    channel: Annotated[str | None, typer.Option(help=", ".join(TASK_CHANNELS))] = None,
    lead: Annotated[str | None, typer.Option(help="only this lead's tasks")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The queue, most urgent first."""
    if status not in ("open", "done", "expired", "cancelled", "all"):
        raise typer.BadParameter("use open, done, expired, cancelled or all", param_hint="--status")
    if channel is not None and channel not in TASK_CHANNELS:
        raise typer.BadParameter(f"use one of {', '.join(TASK_CHANNELS)}", param_hint="--channel")
    rows = _load(status, channel, lead)
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    now = datetime.now(UTC)
    console.print(
        table(
            f"Tasks ({status})",
            ["id", "lead", "channel", "title", "call / send to", "due", "status", "outcome"],
            [
                [
                    row.id,
                    row.lead_id,
                    row.channel,
                    row.title,
                    _reach_at(row),
                    _due(row.due_at, now),
                    row.status,
                    row.outcome,
                ]
                for row in rows
            ],
        )
    )


def _reach_at(task: SalesTask) -> str | None:
    """Where the rep does the task: the postal address for direct mail, else the phone (a
    lead usually has both on file; the queue shows the one the task needs)."""
    return task.address if task.channel == "direct_mail" else task.phone


def _due(due_at: datetime, now: datetime) -> str:
    due = due_at if due_at.tzinfo else due_at.replace(tzinfo=UTC)
    late = " (overdue)" if due < now else ""
    return f"{due:%Y-%m-%d %H:%M}{late}"


@tasks_app.command("done")
def done(
    task_id: Annotated[int, typer.Argument(help="the task's id from 'nurture tasks list'")],
    outcome: Annotated[str, typer.Option(help="what happened, e.g. connected, wrong_number")],
    rep: Annotated[str, typer.Option("--rep", help="who did the task (a rep id)")],
    note: Annotated[str | None, typer.Option(help="free text for the lead's history")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a task's outcome; it scores on the lead and moves its cadence on."""
    engine = make_engine(database_url_from_env())
    with Session(engine) as session:
        task = session.get(SalesTask, task_id)
    if task is None:
        raise typer.Exit(fail(f"no task #{task_id}; see 'nurture tasks list --status all'"))
    error = outcome_error(task.channel, outcome)  # type: ignore[arg-type]  # a TaskChannel
    if error:
        raise typer.BadParameter(error, param_hint="--outcome")
    request = TaskCompletion(rep=rep, task_key=task.key, outcome=outcome, note=note)

    async def main() -> int:
        try:
            result = await act(await connect_client(), task.lead_id, "complete_task", request)
        except LeadActionError as exc:
            return fail(str(exc))
        if as_json:
            print_json({"task": task_id, "outcome": outcome, **result.model_dump(mode="json")})
        else:
            console.print(
                f"task #{task_id} done ({outcome}); lead {result.lead_id} is {result.stage}",
                highlight=False,
            )
        return 0

    run(main())
