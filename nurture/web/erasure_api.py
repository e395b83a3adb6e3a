"""``DELETE /api/leads/{id}``: erase a lead (operators only), answering its receipt.

The erasure is a durable workflow (``nurture.privacy.erasure``): the answer is 200 with the
receipt once it finished (within a few seconds normally), 202 with the erasure's id when it
takes longer (it finishes on its own; asking again answers the receipt), and the same receipt
again for a lead already erased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from nurture.access.auth import ERASE_LEADS
from nurture.contract.erasure import REASON_MAX, ErasureReceiptFields
from nurture.contract.messages import TASK_QUEUE
from nurture.domain.leads import LEAD_ID_PATTERN, check_plain_text
from nurture.privacy.erasure import Erasure, NoSuchLeadError, forget
from nurture.web.responses import AUTHENTICATED, errors
from nurture.web.security import Caller, requires

Reason = Annotated[str, Field(max_length=REASON_MAX), AfterValidator(check_plain_text)]
WAIT = timedelta(seconds=20)


class ErasureAnswer(BaseModel):
    erasure_id: str
    status: Literal["finished", "running"]
    repeated: bool = Field(description="the lead had been erased already: nothing was done now")
    receipt: ErasureReceiptFields | None = Field(
        description="when finished: when, who asked, why, how much of each kind was erased"
    )

    @classmethod
    def of(cls, erasure: Erasure) -> ErasureAnswer:
        return cls(
            erasure_id=erasure.erasure_id,
            status="finished" if erasure.done else "running",
            repeated=erasure.repeated,
            receipt=erasure.receipt,
        )


@dataclass
class ErasureApi:
    client: Client
    engine: Engine
    task_queue: str = TASK_QUEUE

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api", tags=["leads"])
        router.add_api_route(
            "/leads/{lead_id}",
            self.erase,
            methods=["DELETE"],
            dependencies=[Depends(requires(self.engine, *ERASE_LEADS))],
            response_model=ErasureAnswer,
            responses={
                202: {"model": ErasureAnswer, "description": "Erasing: it finishes on its own"},
                **errors(AUTHENTICATED, 404, 422, 503),
            },
            summary="Erase the lead's personal data for good (operators)",
        )
        return router

    async def erase(
        self,
        lead_id: str,
        who: Caller,
        reason: Annotated[
            Reason | None, Query(description="kept on the receipt: no personal data")
        ] = None,
    ) -> JSONResponse:
        if not re.fullmatch(LEAD_ID_PATTERN, lead_id):
            raise HTTPException(
                422,
                "lead_id: expected a lead id (1 to 200 letters, digits and . _ : @ + -, "
                "beginning with a letter or digit)",
            )
        try:
            erasure = await forget(
                self.client,
                self.engine,
                lead_id,
                f"api:{who.name} (key {who.key_id})",
                reason,
                task_queue=self.task_queue,
                wait=WAIT,
            )
        except NoSuchLeadError as exc:
            raise HTTPException(404, str(exc)) from None
        except RPCError as exc:
            raise HTTPException(503, f"Temporal said {exc.status.name}; try again") from None
        answer = ErasureAnswer.of(erasure)
        return JSONResponse(
            answer.model_dump(mode="json"), status_code=200 if erasure.done else 202
        )
