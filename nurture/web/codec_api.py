"""The codec server: the Temporal Web UI and CLI send the payloads of a history here to read
them (``/decode``) and a signal's input to encrypt it (``/encode``), as Temporal's remote codec
protocol has it (a JSON ``{"payloads": [...]}`` both ways).

Two ways in, both for operators only: the signed endpoint ``/codec/<token>`` (what the UI is
given: it sends no API key of ours) and ``/codec`` with an operator API key in
``Authorization: Bearer`` (``temporal workflow show --codec-endpoint … --codec-auth …``). The
browser calls come from the UI's origin, so CORS allows exactly the configured UI origins. A
payload whose key was shredded comes back as the ciphertext it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Sequence

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from sqlalchemy.engine import Engine
from temporalio.api.common.v1 import Payload, Payloads

from nurture.access.codec_links import CodecLinks
from nurture.access.dashboard_links import DashboardLinkError
from nurture.privacy.codec import EnvelopeCodec
from nurture.web.security import requires

CODEC_ORIGINS_ENV = "NURTURE_CODEC_ORIGINS"
DEFAULT_UI_PORT = 8233


def ui_origins(ui_port: int = DEFAULT_UI_PORT) -> list[str]:
    """``NURTURE_CODEC_ORIGINS`` (comma-separated), else the local dev server's UI."""
    configured = os.environ.get(CODEC_ORIGINS_ENV, "")
    origins = [origin.strip().rstrip("/") for origin in configured.split(",") if origin.strip()]
    return origins or [f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"]


class CodecServer:
    def __init__(
        self, codec: EnvelopeCodec, links: CodecLinks, engine: Engine, origins: list[str]
    ) -> None:
        self.codec = codec
        self.links = links
        self.engine = engine
        self.origins = origins

    def app(self) -> FastAPI:
        """The codec routes as an app of their own (mounted at ``/codec``), so their CORS
        policy reaches nothing else."""
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=self.origins,
            allow_methods=["POST"],
            allow_headers=["content-type", "x-namespace", "authorization"],
            allow_credentials=True,
        )
        operator = Depends(requires(self.engine, "operator"))

        for action, run in (("encode", self.codec.encode), ("decode", self.codec.decode_readable)):
            app.add_api_route(
                f"/{action}", self._route(run), methods=["POST"], dependencies=[operator]
            )
            app.add_api_route(
                "/{token}/" + action,
                self._route(run),
                methods=["POST"],
                dependencies=[Depends(self._signed)],
            )
        return app

    def _signed(self, token: str) -> None:
        try:
            self.links.verify(token)
        except DashboardLinkError as exc:  # damaged, forged or expired (CodecLinkError too)
            raise HTTPException(403, str(exc)) from None

    @staticmethod
    def _route(
        run: Callable[[Sequence[Payload]], Awaitable[list[Payload]]],
    ) -> Callable[[Request], Awaitable[dict[str, object]]]:
        async def route(request: Request) -> dict[str, object]:
            try:
                document = json.loads(await request.body())
                if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
                    raise ValueError("not a list of payloads")
                given = json_format.ParseDict(document, Payloads(), ignore_unknown_fields=True)
            except (json_format.ParseError, DecodeError, ValueError, RecursionError):
                raise HTTPException(
                    422,
                    'the body must be JSON {"payloads": [{"metadata": {…}, "data": "<base64>"}]} '
                    "(Temporal's remote codec protocol)",
                ) from None
            result = Payloads(payloads=await run(list(given.payloads)))
            return json.loads(json_format.MessageToJson(result))  # type: ignore[no-any-return]

        return route
