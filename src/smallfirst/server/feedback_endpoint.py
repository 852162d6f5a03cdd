"""`POST /v1/feedback`: a client's verdict on one of its own requests, for learning.

Body: `{"request_id": "...", "score": 0.0-1.0, "correct": true|false, "answer": "..."}`
with at least one of `score`, `correct` and `answer` (the right answer). The request id is
the `x-smallfirst-request-id` header of the answer (a Responses API `resp_...` id works
too). Authenticated like chat: with auth on, a key may rate only its own requests (another
key's request is a 404, as an unknown id is, so ids cannot be probed); with auth off, any.

It stores the feedback and one `feedback` evidence row for the request's task: the answer
the client was served (when the ledger kept responses) against the right answer, agreeing
when the client said it was correct (or scored it 0.5 or more). Feedback outranks the
other evidence about its request (learning/cases.py). Without `learn:` the route is a 404.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smallfirst.errors import InvalidRequestError, NotFoundError
from smallfirst.learning.records import Evidence, Feedback, OutputKind
from smallfirst.learning.store import LearningStore
from smallfirst.learning.tasks import request_text
from smallfirst.learning.verdicts import LABEL_MAX_CHARS, compare
from smallfirst.ledger import Ledger
from smallfirst.server.chat import read_body
from smallfirst.server.gateway import Gateway
from smallfirst.server.responses_endpoint import RESPONSE_PREFIX
from smallfirst.wire.schemas import parse_json, validate

FEEDBACK_PATH = "/v1/feedback"
FLUSH_WAIT_S = 5.0
"""How long a feedback for a request whose row is still in the ledger writer's queue waits
for it to be stored (a client may rate an answer the moment it arrives)."""
LOGGED_AS_JSON = ("chat", "messages", "responses")
"""Endpoints whose ledger `prompt` is the conversation as JSON (else it is the text)."""


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(min_length=1, max_length=100)
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    """How good the answer was, from 0 (useless) to 1 (right)."""
    correct: bool | None = None
    answer: str | None = Field(default=None, min_length=1)
    """The right answer: it becomes the reference the cheaper answers are compared with."""


async def feedback(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    call = request.state.call = gateway.begin("feedback")
    await gateway.authenticate(call, request.headers)
    learning = gateway.learning
    if learning is None or learning.store is None or gateway.ledger is None:
        raise NotFoundError(
            "feedback is for learning from traffic, and learning is off: this gateway's "
            "config has no `learn:` section (add `learn: {}` to turn it on)"
        )
    body = validate(FeedbackBody, parse_json(await read_body(request, gateway.max_body_bytes)))
    if body.score is None and body.correct is None and body.answer is None:
        raise InvalidRequestError(
            "nothing to rate: send `score` (0 to 1), `correct` (true or false) or `answer` "
            "(the right answer)",
            param="score",
        )
    store, ledger = learning.store, gateway.ledger
    row = await asyncio.to_thread(_request_row, store, ledger, body.request_id)
    if row is None or (gateway.auth_required and row["key_id"] != call.entry.key_id):
        raise NotFoundError(
            f"request {body.request_id!r} was not found (a key can rate only its own "
            "requests, by the x-smallfirst-request-id of the answer)",
            param="request_id",
        )
    rating = Feedback(row["request_id"], call.entry.key_id, body.score, body.correct, body.answer)
    evidence = _evidence(store, row, rating) if row["task"] is not None else None
    await asyncio.to_thread(_store, store, rating, evidence)
    answer = {
        "object": "feedback",
        "request_id": row["request_id"],
        "task": row["task"],
        "evidence": evidence is not None,
    }
    return Response(orjson.dumps(answer), media_type="application/json")


ROUTES = [Route(FEEDBACK_PATH, feedback, methods=["POST"])]


def _request_row(store: LearningStore, ledger: Ledger, request_id: str) -> dict[str, Any] | None:
    """The request's ledger row; one still queued in the writer is waited for."""
    ids = [request_id]
    if request_id.startswith(RESPONSE_PREFIX):
        ids.append(request_id.removeprefix(RESPONSE_PREFIX))
    row = _first_row(store, ids)
    if row is None and ledger.writer.pending:
        ledger.flush(FLUSH_WAIT_S)
        row = _first_row(store, ids)
    return row


def _first_row(store: LearningStore, ids: list[str]) -> dict[str, Any] | None:
    return next((row for i in ids if (row := store.request_row(i)) is not None), None)


def _evidence(store: LearningStore, row: dict[str, Any], rating: Feedback) -> Evidence:
    """The served answer against the client's verdict or right answer."""
    agree = rating.correct
    if agree is None and rating.score is not None:
        agree = rating.score >= 0.5
    served = row["response"]
    kind = _output_kind(store, row["task"], rating.answer or served)
    if agree is None and rating.answer is not None and served is not None and kind != "text":
        agree = compare(kind, served, rating.answer).agree
    return Evidence(
        request_id=row["request_id"],
        task=row["task"],
        source="feedback",
        output_kind=kind,
        input=_input_of(row),
        small_model=row["model"],
        small_answer=served,
        large_model=None,
        large_answer=rating.answer,
        agree=agree,
        score=rating.score if rating.score is not None else _score_of(agree),
        detail=_detail(rating),
    )


def _output_kind(store: LearningStore, task: str, reference: str | None) -> OutputKind:
    """What most of the task's evidence says its answers are; for a task without evidence,
    what the reference looks like (a short line compares as a label: exactly, which can
    only keep a task on the large model longer, never move it down wrongly)."""
    kinds = store.output_kinds(task)
    if kinds:
        return cast(OutputKind, max(kinds, key=kinds.__getitem__))
    if reference is None:
        return "text"
    try:
        value = orjson.loads(reference)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, list) and value and all(_is_call(item) for item in value):
        return "tool_calls"
    if isinstance(value, dict | list):
        return "json"
    text = reference.strip()
    return "label" if 0 < len(text) <= LABEL_MAX_CHARS and "\n" not in text else "text"


def _is_call(item: Any) -> bool:
    """A tool call as answers store them (`verdicts.answer_text`)."""
    return isinstance(item, dict) and "name" in item and "arguments" in item


def _input_of(row: dict[str, Any]) -> str | None:
    """The prompt's variable part, when the ledger kept prompts."""
    prompt = row["prompt"]
    if not prompt or row["endpoint"] not in LOGGED_AS_JSON:
        return prompt or None
    try:
        logged = orjson.loads(prompt)
    except orjson.JSONDecodeError:
        return prompt
    return request_text({"input": logged})[1] or None


def _score_of(agree: bool | None) -> float | None:
    return None if agree is None else float(agree)


def _detail(rating: Feedback) -> str:
    said = []
    if rating.correct is not None:
        said.append("correct" if rating.correct else "incorrect")
    if rating.score is not None:
        said.append(f"score {rating.score:g}")
    if rating.answer is not None:
        said.append("gave the right answer")
    return "client feedback: " + ", ".join(said)


def _store(store: LearningStore, rating: Feedback, evidence: Evidence | None) -> None:
    store.add_feedback(rating)
    if evidence is not None:
        store.add_evidence([evidence])
