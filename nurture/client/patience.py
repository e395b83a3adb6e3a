"""Patience with an overloaded Temporal: a call refused with ``RESOURCE_EXHAUSTED`` (the
namespace's rate or concurrent-request limit, a busy workflow) is asked again after a growing,
jittered wait, saying so, instead of failing the command: nothing was done by a refused call.

The SDK's own retries come first, silently, for :data:`QUIET_RETRIES` (3 s: long enough for a
blip, short enough that a user soon hears what is happening); this is for the minutes an
overloaded server on 2 cores may take to catch up under ``nurture simulate`` or a big import.
Used by the commands, not by the HTTP service, whose callers are told 503 and retry on their
own. Every call retried
here is safe to repeat: starts are by workflow id, updates by their id, events carry theirs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from temporalio.client import (
    CountWorkflowsInput,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    TerminateWorkflowInput,
)
from temporalio.service import RetryConfig, RPCError, RPCStatusCode
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

log = structlog.get_logger(__name__)
Answer = TypeVar("Answer")
QUIET_RETRIES = RetryConfig(
    initial_interval_millis=100, max_interval_millis=1000, max_elapsed_time_millis=3000
)
"""The SDK's own retries for a patient client (its default is 10 s of silence)."""


def overloaded(err: BaseException) -> bool:
    cause = err if isinstance(err, RPCError) else err.__cause__
    return isinstance(cause, RPCError) and cause.status == RPCStatusCode.RESOURCE_EXHAUSTED


class Patience(Interceptor):
    """Ask again for up to ``patience`` while Temporal answers ``RESOURCE_EXHAUSTED``."""

    def __init__(self, patience: timedelta = timedelta(minutes=10)) -> None:
        self.patience = patience

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Patient(next, self.patience)


class _Patient(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, patience: timedelta) -> None:
        super().__init__(next)
        self.patience = patience

    async def _again(self, what: str, call: Callable[[], Awaitable[Answer]]) -> Answer:
        def waiting(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "Temporal is overloaded; asking again",
                call=what,
                attempt=state.attempt_number,
                retry_in_s=round(wait, 1),
                answer=str(err.__cause__ or err) if err else None,
            )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(overloaded),
            wait=wait_exponential_jitter(multiplier=0.5, max=15.0),
            stop=stop_after_delay(self.patience.total_seconds()),
            before_sleep=waiting,
            reraise=True,
        ):
            with attempt:
                return await call()
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def start_workflow(self, input: StartWorkflowInput) -> Any:
        return await self._again("start", lambda: super(_Patient, self).start_workflow(input))

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        await self._again("signal", lambda: super(_Patient, self).signal_workflow(input))

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        return await self._again("query", lambda: super(_Patient, self).query_workflow(input))

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
        return await self._again(
            "update", lambda: super(_Patient, self).start_workflow_update(input)
        )

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> Any:
        return await self._again(
            "update with start",
            lambda: super(_Patient, self).start_update_with_start_workflow(input),
        )

    async def describe_workflow(self, input: DescribeWorkflowInput) -> Any:
        return await self._again("describe", lambda: super(_Patient, self).describe_workflow(input))

    async def count_workflows(self, input: CountWorkflowsInput) -> Any:
        return await self._again("count", lambda: super(_Patient, self).count_workflows(input))

    async def terminate_workflow(self, input: TerminateWorkflowInput) -> None:
        await self._again("terminate", lambda: super(_Patient, self).terminate_workflow(input))
