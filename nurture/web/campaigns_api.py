"""``/api/campaigns``: campaigns and their costs, as marketers enter them (see
:mod:`nurture.store.campaigns`); the ``cost`` report reads them.

Every route needs a marketer or operator key (the router's dependency)."""

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, model_validator
from sqlalchemy.engine import Engine

from nurture.access.auth import MARKETING
from nurture.store.campaigns import (
    CURRENCY_PATTERN,
    MAX_AMOUNT,
    MONTH_PATTERN,
    NOTE_MAX,
    CampaignError,
    CampaignSummary,
    RecordedCost,
    list_campaigns,
    record_cost,
    save_campaign,
    summary_of,
)
from nurture.web.responses import AUTHENTICATED, JSON_BODY, errors, union_tag
from nurture.web.security import requires


class CampaignIn(BaseModel):
    """Fields left out keep their value."""

    channel: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=NOTE_MAX)


class CostFields(BaseModel):
    """What every cost gives besides its period. No other field is taken: a misspelt one
    (``perod_end``) is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    amount: float = Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False, strict=True)
    currency: str = Field(default="USD", pattern=CURRENCY_PATTERN, examples=["USD"])
    note: str = Field(default="", max_length=NOTE_MAX)


class CostForMonth(CostFields):
    month: str = Field(pattern=MONTH_PATTERN, examples=["2026-11"])

    @model_validator(mode="before")
    @classmethod
    def _not_both(cls, data: object) -> object:
        if isinstance(data, dict) and {"period_start", "period_end"} & data.keys():
            raise ValueError("give a month or a period_start and period_end, not both")
        return data


def _date_text(value: object) -> object:
    """JSON has no date type: the schema says a ``date`` string, and so does this check, where
    pydantic alone would also take a number of seconds (``0`` for 1970-01-01)."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError(f"not a date: {str(value)[:40]!r}; write it as 2026-11-01")
    return value


CostDay = Annotated[date, BeforeValidator(_date_text)]


class CostForPeriod(CostFields):
    period_start: CostDay
    period_end: CostDay = Field(description="exclusive: November 2026 ends on 2026-12-01")


# Tags no field can be named (they hold spaces): the error locations drop them, and only them.
MONTH_COST, PERIOD_COST = "cost by month", "cost by period"


def _cost_shape(body: object) -> str | None:
    """A body with ``month`` is a cost for that month; any other object, for a period. Not an
    object: no shape (pydantic refuses it as such)."""
    if isinstance(body, dict):
        return MONTH_COST if "month" in body else PERIOD_COST
    if isinstance(body, CostFields):
        return MONTH_COST if isinstance(body, CostForMonth) else PERIOD_COST
    return None


CostIn = Annotated[
    Annotated[CostForMonth, union_tag(MONTH_COST)]
    | Annotated[CostForPeriod, union_tag(PERIOD_COST)],
    Discriminator(
        _cost_shape,
        custom_error_type="cost_shape",
        custom_error_message='a cost is a JSON object: {"month": "2026-11", "amount": 3000} or '
        '{"period_start": "2026-11-01", "period_end": "2026-11-16", "amount": 1500}',
    ),
]
"""A month ("2026-11") or a period [period_start, period_end): one of the two (``oneOf``)."""


@dataclass
class CampaignsApi:
    engine: Engine

    def router(self) -> APIRouter:
        router = APIRouter(
            prefix="/api/campaigns",
            tags=["campaigns"],
            dependencies=[Depends(requires(self.engine, *MARKETING))],
        )
        router.add_api_route(
            "",
            self.get_campaigns,
            methods=["GET"],
            response_model=list[CampaignSummary],
            responses=errors(AUTHENTICATED),
        )
        router.add_api_route(
            "/{name}",
            self.put_campaign,
            methods=["PUT"],
            response_model=CampaignSummary,
            responses={
                201: {"model": CampaignSummary, "description": "Added"},
                **errors(AUTHENTICATED, JSON_BODY, 404),
            },
        )
        router.add_api_route(
            "/{name}/costs",
            self.post_cost,
            methods=["POST"],
            response_model=RecordedCost,
            responses={
                201: {"model": RecordedCost, "description": "Recorded"},
                **errors(AUTHENTICATED, JSON_BODY),
            },
        )
        return router

    def get_campaigns(self) -> list[CampaignSummary]:
        """Every campaign with the number and total of its recorded costs."""
        return list_campaigns(self.engine)

    def put_campaign(self, name: str, body: CampaignIn, response: Response) -> CampaignSummary:
        """Add a campaign (201) or update its channel or description (200)."""
        try:
            row, created = save_campaign(self.engine, name, body.channel, body.description)
        except CampaignError as exc:
            raise HTTPException(422, str(exc)) from None
        summary = summary_of(self.engine, row.name)
        if summary is None:  # removed in between: nothing removes campaigns today
            raise HTTPException(404, f"campaign {row.name!r} is gone")
        response.status_code = 201 if created else 200
        return summary

    def post_cost(self, name: str, body: CostIn, response: Response) -> RecordedCost:
        """Record what a campaign cost over a period (201); the same campaign and period again
        replaces the amount (200). A new campaign name adds the campaign."""
        try:
            recorded = record_cost(
                self.engine,
                name,
                body.amount,
                month=body.month if isinstance(body, CostForMonth) else None,
                period_start=body.period_start if isinstance(body, CostForPeriod) else None,
                period_end=body.period_end if isinstance(body, CostForPeriod) else None,
                currency=body.currency,
                note=body.note,
            )
        except CampaignError as exc:
            raise HTTPException(422, str(exc)) from None
        response.status_code = 200 if recorded.replaced else 201
        return recorded
