"""``/api/reports/{name}``: the same reports as ``nurture report``, as JSON or CSV."""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from nurture.access.auth import MARKETING
from nurture.reports.base import (
    Report,
    ReportError,
    ReportQuery,
    UnknownReportError,
    query_problems,
    run_report,
    to_csv,
)
from nurture.web.responses import AUTHENTICATED, also_as, errors
from nurture.web.security import requires


@dataclass
class ReportsApi:
    engine: Engine

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api/reports", tags=["reports"])
        router.add_api_route(
            "/{name}",
            self.get_report,
            methods=["GET"],
            response_model=Report,
            dependencies=[Depends(requires(self.engine, *MARKETING))],
            responses={**also_as("text/csv"), **errors(AUTHENTICATED, 404, 422)},
        )
        return router

    async def get_report(
        self,
        name: str,
        since: datetime | None = None,
        until: datetime | None = None,
        format: Literal["json", "csv"] = "json",
        table: str | None = None,
        target_return_rate: Annotated[float, Query(gt=0, lt=1)] = 0.25,
        min_handoffs: Annotated[int, Query(ge=1)] = 20,
        band_width: Annotated[int, Query(ge=1, le=1000)] = 10,
        cadence: Annotated[
            str | None,
            Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="engagement: one cadence"),
        ] = None,
    ) -> Report | PlainTextResponse:
        """A report for [since, until) (ISO 8601; either may be left out). ``format=csv``
        returns one table (``table`` names which; the first by default)."""
        try:
            query = ReportQuery(
                since=since,
                until=until,
                target_return_rate=target_return_rate,
                min_handoffs=min_handoffs,
                band_width=band_width,
                cadence=cadence,
            )
        except ValidationError as exc:
            raise HTTPException(422, query_problems(exc)) from None
        try:
            result = await run_in_threadpool(run_report, self.engine, name, query)
            if format == "csv":
                return PlainTextResponse(to_csv(result, table), media_type="text/csv")
        except ReportError as exc:
            raise HTTPException(
                404 if isinstance(exc, UnknownReportError) else 422, str(exc)
            ) from None
        return result
