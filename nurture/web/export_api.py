"""``GET /api/leads/{lead_id}/export``: everything we hold on a lead as one JSON document, for
operators only (what it holds is every piece of personal data we have on the person)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.engine import Engine
from temporalio.client import Client

from nurture.access.auth import PERSONAL_DATA
from nurture.client.lead_holdings import export_lead
from nurture.client.sales import TemporalUnavailableError, UnknownLeadError
from nurture.web.responses import AUTHENTICATED, errors
from nurture.web.security import requires


@dataclass
class ExportApi:
    client: Client
    engine: Engine

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api", tags=["privacy"])
        router.add_api_route(
            "/leads/{lead_id}/export",
            self.export,
            methods=["GET"],
            dependencies=[Depends(requires(self.engine, *PERSONAL_DATA))],
            responses=errors(AUTHENTICATED, 404, 422, 503),
            summary="Everything held on a lead, as one JSON document",
            description=(
                "Profile, state, score with its explanation, events, score changes, stage moves, "
                "hand-offs, rep turns, touches with the emails as sent, tasks, suppression "
                "entries, CRM pushes, webhook events, and every other record naming the lead. "
                "`missing` says what could not be read (a closed or missing workflow)."
            ),
        )
        return router

    async def export(self, lead_id: str) -> dict[str, Any]:
        try:
            return await export_lead(self.client, self.engine, lead_id)
        except UnknownLeadError as exc:
            raise HTTPException(404, str(exc)) from None
        except TemporalUnavailableError as exc:
            raise HTTPException(503, f"{exc}; try again") from None
