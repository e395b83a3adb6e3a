"""``python starter.py …`` is the ``nurture`` command: run the engine, feed it leads and
events, act as a rep, audit and simulate. See ``python starter.py --help``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from nurture.config.rules_source import RulesSource
    from nurture.config.settings import WorkerOptions


def main() -> None:
    from nurture.cli import app
    from nurture.cli.parts import EngineParts
    from nurture.store.availability import DATABASE_UNAVAILABLE
    from nurture.store.migrations import SchemaTooNewError

    try:
        app(obj=EngineParts(build_worker=_build_worker))
    except SchemaTooNewError as exc:  # from any command that opens the database
        from nurture.cli.output import fail
        from nurture.runtime.process import exit_now

        exit_now(fail(str(exc), 2))
    except DATABASE_UNAVAILABLE as exc:  # from any command: refused, cut, or no answer in time
        from nurture.cli.output import database_unavailable
        from nurture.runtime.process import exit_now

        exit_now(database_unavailable(exc))


def _build_worker(client: Client, options: WorkerOptions, source: RulesSource) -> Worker:
    """``worker.build_worker``, imported only when ``nurture up`` starts one (every other
    command starts without loading the workflow and its activities)."""
    from worker import build_worker

    return build_worker(client, options, source)


if __name__ == "__main__":
    main()
