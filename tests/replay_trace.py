"""What a lead workflow asks for while replaying a recorded history, as plain JSON.

Replay checks the *kind* and order of each command (an activity of this type, a timer, an
upsert), not what goes in it: an email's idempotency key, the facts and versions a batch writes
to the read model, the search-attribute values, the state carried to the next run. This trace
records exactly those, so a refactoring that must not change behaviour can be checked against
the trace recorded before it (``tests/test_replay_trace.py``).

``python -m tests.replay_trace --write`` records the traces of every history in
``tests/histories/`` into ``tests/histories/traces/`` (only when the change is meant to alter
what running leads send: say why in the commit).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartActivityInput,
    StartLocalActivityInput,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.worker._interceptor import ContinueAsNewInput

from tests.recorded_rules import only_recorded_rules
from workflows.lead import LeadWorkflow

HISTORIES = Path(__file__).parent / "histories"
TRACES = HISTORIES / "traces"

_trace: list[dict[str, Any]] = []
_instance: list[Any] = []  # the workflow object being replayed (its state is traced last)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _state_digest() -> str:
    """The lead's state at this command (a digest: the full state is in the trace's last
    entry and in every continue-as-new)."""
    _instance[:] = [workflow.instance()]
    state = workflow.instance()._core.state
    return hashlib.sha256(state.model_dump_json().encode()).hexdigest()[:16]


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        _trace.append(
            {"activity": input.activity, "args": _plain(list(input.args)), "state": _state_digest()}
        )
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        _trace.append(
            {"local": input.activity, "args": _plain(list(input.args)), "state": _state_digest()}
        )
        return super().start_local_activity(input)

    def continue_as_new(self, input: ContinueAsNewInput) -> Any:
        _trace.append({"continue_as_new": _plain(list(input.args))})
        return super().continue_as_new(input)


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class _Tracing(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound


@contextmanager
def _tracing_upserts() -> Iterator[None]:
    real = workflow.upsert_search_attributes

    def traced(updates: Any) -> None:
        _trace.append(
            {
                "upsert": [
                    [u.key.name, None if u.value is None else _json_value(u.value)] for u in updates
                ]
            }
        )
        real(updates)

    workflow.upsert_search_attributes = traced  # type: ignore[assignment]
    try:
        yield
    finally:
        workflow.upsert_search_attributes = real  # type: ignore[assignment]


def _json_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def trace(path: Path) -> list[dict[str, Any]]:
    """Replay the history at ``path`` (it must replay) and return what the workflow asked."""
    _trace.clear()
    _instance.clear()
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[LeadWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),  # so the upsert wrapper reaches it
        interceptors=[_Tracing()],
    )
    with _tracing_upserts(), only_recorded_rules():
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        raise AssertionError(f"{path.name} does not replay: {result.replay_failure}")
    final = [{"final_state": _instance[0]._core.state.model_dump(mode="json")}] if _instance else []
    return [*_trace, *final]


def trace_path(history: Path) -> Path:
    return TRACES / f"{history.stem}.trace.json"


async def _write_all() -> None:
    TRACES.mkdir(exist_ok=True)
    for path in sorted(HISTORIES.glob("*.json")):
        entries = await trace(path)
        trace_path(path).write_text(json.dumps(entries, indent=1) + "\n")
        print(f"{trace_path(path)}: {len(entries)} commands")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="record the traces")
    if parser.parse_args().write:
        asyncio.run(_write_all())
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
