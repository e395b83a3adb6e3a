"""``/api/campaigns``: campaigns and their costs, as marketers enter them (see
:mod:`nurture.campaigns`); the ``cost`` report reads them.

No ``from __future__ import annotations`` here: FastAPI resolves a string annotation in the
module's globals, so the role dependency (``Marketer``, local to the router factory) would
silently become a required query parameter instead of an authentication check."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from nurture.auth import Principal
from nurture.campaigns import (
    MAX_AMOUNT,
    CampaignError,
    CampaignSummary,
    RecordedCost,
    list_campaigns,
    record_cost,
    save_campaign,
    summary_of,
)
from nurture.web.responses import AUTHENTICATED, JSON_BODY, errors
from nurture.web.security import requires


class CampaignIn(BaseModel):
    """Fields left out keep their value."""

    channel: str | None = Field(default=None, max_length=64)
    description: str | None = None


class CostIn(BaseModel):
    """A month ("2026-11") or a period [period_start, period_end)."""

    amount: float = Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)
    month: str | None = Field(default=None, examples=["2026-11"])
    period_start: date | None = None
    period_end: date | None = Field(default=None, description="exclusive")
    currency: str = "USD"
    note: str = ""


def campaigns_router(engine: Engine) -> APIRouter:
    router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])
    Marketer = Annotated[Principal, Depends(requires(engine, "marketer", "operator"))]

    @router.get("", response_model=list[CampaignSummary], responses=errors(AUTHENTICATED))
    def get_campaigns(_who: Marketer) -> list[CampaignSummary]:
        """Every campaign with the number and total of its recorded costs."""
        return list_campaigns(engine)

    @router.put(
        "/{name}",
        response_model=CampaignSummary,
        responses={
            201: {"model": CampaignSummary, "description": "Added"},
            **errors(AUTHENTICATED, JSON_BODY, 404),
        },
    )
    def put_campaign(
        name: str, body: CampaignIn, response: Response, _who: Marketer
    ) -> CampaignSummary:
        """Add a campaign (201) or update its channel or description (200)."""
        try:
            row, created = save_campaign(engine, name, body.channel, body.description)
        except CampaignError as exc:
            raise HTTPException(422, str(exc)) from None
        summary = summary_of(engine, row.name)
        if summary is None:  # removed in between: nothing removes campaigns today
            raise HTTPException(404, f"campaign {row.name!r} is gone")
        response.status_code = 201 if created else 200
        return summary

    @router.post(
        "/{name}/costs",
        response_model=RecordedCost,
        responses={
            201: {"model": RecordedCost, "description": "Recorded"},
            **errors(AUTHENTICATED, JSON_BODY),
        },
    )
    def post_cost(name: str, body: CostIn, response: Response, _who: Marketer) -> RecordedCost:
        """Record what a campaign cost over a period (201); the same campaign and period again
        replaces the amount (200). A new campaign name adds the campaign."""
        try:
            recorded = record_cost(
                engine,
                name,
                body.amount,
                period_start=body.period_start,
                period_end=body.period_end,
                month=body.month,
                currency=body.currency,
                note=body.note,
            )
        except CampaignError as exc:
            raise HTTPException(422, str(exc)) from None
        response.status_code = 200 if recorded.replaced else 201
        return recorded

    return router
