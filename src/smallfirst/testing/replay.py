"""The replay server: an OpenAI-compatible HTTP endpoint answering from a `ReplayBook`.

Point any client (or a smallfirst model with `backend: openai`) at it to try routing and
cascades offline, with a chosen accuracy, error rate and latency. `smallfirst replay` runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from smallfirst.errors import InvalidRequestError, SmallfirstError
from smallfirst.models.replay import InjectedFailure, ReplayBook, approx_tokens
from smallfirst.types import Message
from smallfirst.wire.render import DONE, ChunkWriter, answer_json


class ReplayServer:
    def __init__(self, book: ReplayBook, model: str = "replay", latency_s: float = 0.0) -> None:
        self.book = book
        self.model = model
        self.latency_s = latency_s
        self.served = 0
        self.failed = 0

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/health", self._health, methods=["GET"]),
            ]
        )

    async def _health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "served": self.served, "failed": self.failed})

    async def _models(self, _request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def _completions(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    async def _answer(self, request: Request, chat: bool) -> Response:
        try:
            body = await _json_body(request)
            text, whole = _texts(body, chat)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            self.book.maybe_fail()
            answer = self.book.reply(text)
        except InjectedFailure as exc:
            self.failed += 1
            return JSONResponse(exc.to_openai(), status_code=503)
        except SmallfirstError as exc:
            return JSONResponse(exc.to_openai(), status_code=exc.status)
        self.served += 1
        usage = {"prompt_tokens": approx_tokens(whole), "completion_tokens": approx_tokens(answer)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        request_id = f"replay-{self.served}"
        if body.get("stream"):
            writer = ChunkWriter(request_id, self.model, chat)
            chunks = _chunks(writer, answer, usage, body)
            return StreamingResponse(chunks, media_type="text/event-stream")
        reply = answer_json(request_id, self.model, answer, chat, usage=usage)
        return Response(orjson.dumps(reply), media_type="application/json")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequestError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return body


def _texts(body: dict[str, Any], chat: bool) -> tuple[str, str]:
    """(text to look up, whole prompt for the token count)."""
    if not chat:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidRequestError("`prompt` must be a string", param="prompt")
        return prompt, prompt
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequestError("`messages` must be a non-empty list", param="messages")
    try:
        messages = [Message.from_openai(m) for m in raw]
    except (KeyError, TypeError, AttributeError):
        raise InvalidRequestError(
            "each message needs a role and content", param="messages"
        ) from None
    users = [m.content for m in messages if m.role == "user"]
    whole = "\n".join(m.content for m in messages)
    return (users[-1] if users else whole), whole


async def _chunks(
    writer: ChunkWriter, answer: str, usage: dict[str, int], body: dict[str, Any]
) -> AsyncIterator[bytes]:
    yield writer.text(answer)
    yield writer.finish("stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield writer.usage(usage)
    yield DONE
