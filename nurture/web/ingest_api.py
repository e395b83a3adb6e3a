"""``POST /api/events`` and ``POST /api/leads`` (one item or thousands), and
``POST /api/leads/import`` (CSV): each item validated on its own; good items are applied even
when others are bad; every event reaches its lead once, also when a client retries a batch."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import Client

from nurture.client.csv_import import CsvHeaderError, rows_as_json
from nurture.client.ingest import (
    LeadDelivery,
    SalesReady,
    SuppressionCheck,
    never_sales_ready,
    unknown_event_type,
)
from nurture.contract.messages import TASK_QUEUE
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.web.responses import AUTHENTICATED, errors, errors_or, json_body, one_or_many

log = structlog.get_logger(__name__)

MAX_ITEMS = 10_000


class ItemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ItemResult(BaseModel):
    index: int = Field(description="position in the batch (CSV: the file's line number)")
    status: Literal["accepted", "rejected", "failed"]
    lead_id: str | None = None
    event_id: str | None = Field(default=None, description="the id that makes a retry count once")
    errors: list[ItemError] = Field(default_factory=list)
    note: str | None = Field(
        default=None, description="accepted, with something to know (its address is suppressed)"
    )


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    failed: int = Field(description="valid, but not delivered (Temporal unreachable): retry")
    items: list[ItemResult]


def _errors(exc: ValidationError) -> list[ItemError]:
    return [
        ItemError(
            loc=[_printable(p) for p in e["loc"]],
            msg=e["msg"].removeprefix("Value error, "),
            type=e["type"],
        )
        for e in exc.errors()
    ]


def _printable(part: str | int) -> str | int:
    """A location as the client sent it, short, and encodable as UTF-8 (a key may hold a lone
    surrogate; echoing it would make the answer itself fail)."""
    if isinstance(part, int):
        return part
    return part[:100].encode("utf-8", "backslashreplace").decode("utf-8")


Parsed = tuple[int, LeadEvent | LeadProfile | ItemResult]


@dataclass
class IngestApi:
    client: Client
    known_event_types: Callable[[], set[str] | None]
    may_ingest: Callable[..., Any]
    may_import: Callable[..., Any]
    task_queue: str = TASK_QUEUE
    suppression: SuppressionCheck | None = None
    sales_ready: SalesReady = never_sales_ready

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api", tags=["ingest"])
        ingest, importing = [Depends(self.may_ingest)], [Depends(self.may_import)]
        # 422: every item refused (the batch result) or the request itself (an error);
        # 503: an item not delivered (the batch result says which).
        batch_errors = {**errors(AUTHENTICATED, 400, 413), **errors_or(BatchResult, 422, 503)}
        event = LeadEvent.edge_json_schema()
        if known := self.known_event_types():  # the types the rules know at startup
            event["properties"]["type"] = {"type": "string", "enum": sorted(known)}
        router.add_api_route(
            "/events",
            self.events,
            methods=["POST"],
            response_model=BatchResult,
            dependencies=ingest,
            responses=batch_errors,
            openapi_extra=json_body(one_or_many(event, MAX_ITEMS)),
            summary="Behaviour events: one object or an array (up to 10,000)",
        )
        router.add_api_route(
            "/leads",
            self.profiles,
            methods=["POST"],
            response_model=BatchResult,
            dependencies=ingest,
            responses=batch_errors,
            openapi_extra=json_body(one_or_many(LeadProfile.edge_json_schema(), MAX_ITEMS)),
            summary="Lead profiles (create or update): one object or an array",
        )
        router.add_api_route(
            "/leads/import",
            self.import_csv,
            methods=["POST"],
            response_model=BatchResult,
            dependencies=importing,
            responses=batch_errors,
            summary="Existing leads as CSV (header: lead_id, email, …, custom.<name>)",
            openapi_extra={
                "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}
            },
        )
        return router

    async def events(
        self,
        request: Request,
        payload: Annotated[dict[str, Any] | list[Any], Body()],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        """Items without ``at`` or ``event_id`` count once across retries only when the
        request carries an ``Idempotency-Key``: the key, the caller and the item's content
        identify it (so a client may resend just the items that failed)."""
        items = _bounded(payload if isinstance(payload, list) else [payload])
        known = self.known_event_types()
        caller = request.state.principal.key_id
        seen: dict[str, int] = {}
        parsed: list[Parsed] = []
        for index, raw in enumerate(items):
            try:
                event = LeadEvent.from_edge(raw, strict=True)
            except ValidationError as exc:
                parsed.append(
                    (index, ItemResult(index=index, status="rejected", errors=_errors(exc)))
                )
                continue
            if unknown := unknown_event_type(event, known):
                error = ItemError(loc=["type"], msg=unknown, type="unknown_event_type")
                parsed.append((index, ItemResult(index=index, status="rejected", errors=[error])))
                continue
            event = event.with_identity()
            if event.event_id is None and idempotency_key:
                content = json.dumps(raw, sort_keys=True, default=str)
                occurrence = seen[content] = seen.get(content, -1) + 1  # twins stay distinct
                digest = hashlib.sha256(
                    f"{idempotency_key}\0{caller}\0{content}\0{occurrence}".encode()
                ).hexdigest()[:32]
                event = event.model_copy(update={"event_id": f"idem-{digest}"})
            parsed.append((index, event))
        return await self._deliver(parsed)

    async def profiles(
        self, payload: Annotated[dict[str, Any] | list[Any], Body()]
    ) -> JSONResponse:
        items = _bounded(payload if isinstance(payload, list) else [payload])
        return await self._deliver(_profiles(enumerate(items), strict=True))

    async def import_csv(self, request: Request) -> JSONResponse:
        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HTTPException(422, "the CSV is not UTF-8: export it as 'CSV UTF-8'") from None
        try:
            rows = list(rows_as_json(io.StringIO(text, newline="")))
        except CsvHeaderError as exc:
            raise HTTPException(422, str(exc)) from None
        numbered = _bounded([(line, json.loads(r)) for line, r in enumerate(rows, start=1) if r])
        return await self._deliver(_profiles(numbered))

    async def _deliver(self, parsed: list[Parsed]) -> JSONResponse:
        delivery = LeadDelivery(
            self.client,
            self.task_queue,
            suppression=self.suppression,
            sales_ready=self.sales_ready,
        )

        async def result(index: int, item: LeadEvent | LeadProfile | ItemResult) -> ItemResult:
            if isinstance(item, ItemResult):
                return item
            delivered = await delivery.deliver(item)
            return ItemResult(
                index=index,
                status=delivered.status,
                lead_id=item.lead_id,
                event_id=item.event_id if isinstance(item, LeadEvent) else None,
                errors=[ItemError(loc=[], msg=delivered.reason, type=delivered.kind)]
                if delivered.reason and delivered.kind
                else [],
                note=delivered.note,
            )

        ordered = list(await asyncio.gather(*(result(index, item) for index, item in parsed)))
        body = BatchResult(
            accepted=sum(r.status == "accepted" for r in ordered),
            rejected=sum(r.status == "rejected" for r in ordered),
            failed=sum(r.status == "failed" for r in ordered),
            items=ordered,
        )
        status = 503 if body.failed else (422 if ordered and not body.accepted else 200)
        log.info("ingest", accepted=body.accepted, rejected=body.rejected, failed=body.failed)
        return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _bounded(items: list[Any]) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise HTTPException(413, f"at most {MAX_ITEMS} items per request; split the batch")
    return items


def _profiles(items: Iterable[tuple[int, Any]], *, strict: bool = False) -> list[Parsed]:
    """``strict``: JSON items, typed as the schema says (not a CSV's text cells)."""
    parsed: list[Parsed] = []
    for index, raw in items:
        if isinstance(raw, dict) and "_csv_error" in raw:
            error = ItemError(loc=["row"], msg=str(raw["_csv_error"]), type="csv")
            parsed.append((index, ItemResult(index=index, status="rejected", errors=[error])))
            continue
        try:
            parsed.append((index, LeadProfile.from_edge(raw, strict=strict)))
        except ValidationError as exc:
            parsed.append((index, ItemResult(index=index, status="rejected", errors=_errors(exc))))
    return parsed
