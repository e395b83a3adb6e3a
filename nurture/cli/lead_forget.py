"""``nurture lead forget LEAD`` and ``nurture lead erasure LEAD``: erase a person, and show
the receipts of their erasure."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from nurture.cli.output import JsonOpt, connect_client, console, fail, print_json, run, table
from nurture.client.sales import LeadActionError
from nurture.contract.erasure import REASON_MAX
from nurture.contract.messages import TASK_QUEUE
from nurture.domain.leads import check_plain_text
from nurture.privacy.erasure import Erasure, NoSuchLeadError, erasures_of, forget
from nurture.store.db import database_url_from_env, make_engine

QueueOpt = Annotated[str, typer.Option("--task-queue", help="worker task queue", hidden=True)]


def lead_forget(
    lead_id: Annotated[str, typer.Argument(help="the lead id to erase")],
    reason: Annotated[
        str | None,
        typer.Option(help="why (kept on the receipt: no personal data, e.g. 'GDPR art. 17')"),
    ] = None,
    as_json: JsonOpt = False,
    task_queue: QueueOpt = TASK_QUEUE,
) -> None:
    """Erase a lead for good: its address goes on the suppression list as a hash only, its
    workflow is terminated, its data keys destroyed (its histories can never be read again),
    its rows pseudonymised (reports keep their totals), the CRM and SendGrid told. Durable:
    it finishes even if this command is interrupted. Asking again answers the same receipt."""

    async def main() -> int:
        try:
            why = None if reason is None else check_plain_text(reason)
            if why is not None and len(why) > REASON_MAX:  # as the API refuses it: never cut
                raise ValueError(f"at most {REASON_MAX} characters, got {len(why)}")
        except ValueError as exc:
            return fail(f"--reason: {exc}", 2)
        try:
            client = await connect_client()
        except LeadActionError as exc:
            return fail(str(exc), 2)
        try:
            erasure = await forget(
                client,
                make_engine(database_url_from_env()),
                lead_id,
                f"cli:{getpass.getuser()}",
                why,
                task_queue=task_queue,
            )
        except NoSuchLeadError as exc:
            return fail(str(exc))
        _print(erasure, as_json)
        return 0

    run(main())


def lead_erasure(
    lead_id: Annotated[str, typer.Argument(help="the lead id whose erasure to show")],
    as_json: JsonOpt = False,
) -> None:
    """The receipts of a lead's erasure (and one still running). Exit 1 when it was never
    asked for."""

    async def main() -> int:
        try:
            client = await connect_client()
        except LeadActionError as exc:
            return fail(str(exc), 2)
        found = await erasures_of(client, make_engine(database_url_from_env()), lead_id)
        if as_json:
            print_json([_as_json(e) for e in found])
        for erasure in [] if as_json else found:
            _print(erasure, False)
        if not found:
            return fail(f"no erasure of lead {lead_id!r} was ever asked for")
        return 0

    run(main())


def _as_json(erasure: Erasure) -> dict[str, object]:
    receipt = erasure.receipt
    return {
        "erasure_id": erasure.erasure_id,
        "status": "finished" if receipt else "running",
        "repeated": erasure.repeated,
        "receipt": receipt.model_dump(mode="json") if receipt else None,
    }


def _print(erasure: Erasure, as_json: bool) -> None:
    if as_json:
        print_json(_as_json(erasure))
        return
    receipt = erasure.receipt
    if receipt is None:
        console.print(
            f"erasure {erasure.erasure_id} is running; it finishes on its own (see "
            "'nurture lead erasure LEAD')",
            highlight=False,
        )
        return
    if erasure.repeated:
        console.print("already erased: nothing more to do; its receipt:", highlight=False)
    rows = [
        ["erasure", receipt.erasure_id],
        ["requested", f"{receipt.requested_at:%Y-%m-%d %H:%M:%S} UTC by {receipt.requested_by}"],
        ["finished", f"{receipt.finished_at:%Y-%m-%d %H:%M:%S} UTC"],
        ["reason", receipt.reason or "-"],
        *([kind, str(count)] for kind, count in receipt.erased.items()),
    ]
    console.print(table("Erasure receipt", ["", ""], rows))
