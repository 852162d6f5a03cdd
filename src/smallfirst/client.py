"""`smallfirst.Client` / `AsyncClient`: the gateway's flow in process, without a server.

A request goes the way it goes through `smallfirst serve`: its `model` resolves to a target
(a model, `auto` or another router, or a cascade), the router decides, the model answers
behind its failover policy (retries, fallbacks, circuit breaker, deadline), and the request
and its hops become ledger rows priced against the baseline model, so `smallfirst report` and
the dashboard count library traffic too. There is no API key, so no budget is reserved.

    from smallfirst import Client

    with Client() as client:                       # smallfirst.yaml, as `serve` reads it
        answer = client.chat("Is this a refund request? ...", model="auto")
        print(answer.text, answer.model, answer.cost_usd)
        for delta in client.stream("Write a haiku", model="default"):
            print(delta.text, end="")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from smallfirst.blocking import iterate_blocking, run_blocking
from smallfirst.config import Config, load_config
from smallfirst.errors import InvalidRequestError, SmallfirstError, UpstreamError
from smallfirst.routing.cascade import replay
from smallfirst.routing.hops import HopLog
from smallfirst.server import admission
from smallfirst.server.call import Call
from smallfirst.server.cascade_call import record_hops
from smallfirst.server.gateway import Gateway
from smallfirst.server.passthrough import record_retries
from smallfirst.target import Answer, AnyRequest, CascadeTarget, Route, Target
from smallfirst.types import ChatRequest, CompletionRequest, Delta, GenerationParams, Message
from smallfirst.wire.collect import StreamCollector
from smallfirst.wire.fields import refuse_uncarried

Messages = str | Sequence[Message | dict[str, Any]]
"""A user turn as text, or a conversation of `Message`s or OpenAI-style message dicts."""


class AsyncClient:
    def __init__(
        self,
        config: Config | str | Path | None = None,
        *,
        ledger_url: str | None = None,
        ledger: bool = True,
    ) -> None:
        """`config`: a `Config`, a path to smallfirst.yaml, or None to find it as `serve`
        does. `ledger_url` overrides `server.ledger_url`; `ledger=False` records nothing.
        Nothing is opened or loaded until the first request."""
        if not isinstance(config, Config):
            config = load_config(None if config is None else str(config))
        self._gateway = Gateway(config, ledger_url=ledger_url, auth=False)
        self._record = ledger
        self._started = False

    @property
    def registry(self):
        return self._gateway.registry

    async def chat(self, messages: Messages, *, model: str = "auto", **params: Any) -> Answer:
        """One chat request; `params` are `GenerationParams` fields (max_tokens,
        temperature, stop, seed, json_schema, ...)."""
        request = ChatRequest(as_messages(messages), generation_params(params))
        return await self._generate("chat", model, request)

    async def complete(self, prompt: str, *, model: str = "auto", **params: Any) -> Answer:
        return await self._generate(
            "completions", model, CompletionRequest(prompt, generation_params(params))
        )

    async def stream(
        self, messages: Messages, *, model: str = "auto", **params: Any
    ) -> AsyncIterator[Delta]:
        """The answer as deltas. Leaving early charges what was received, as the gateway
        does for a client that hangs up."""
        request = ChatRequest(as_messages(messages), generation_params(params))
        call, target, route, log = await self._open("chat", model, request)
        if isinstance(target, CascadeTarget):  # checked whole before anything is sent
            answer = await self._answer(call, target, route, log, request)
            async for delta in replay(answer.generation):
                yield delta
            return
        collected = StreamCollector()
        deltas = target.stream(request, **self._options(call, route, log))
        try:
            async for delta in deltas:
                collected.add_delta(delta)
                if delta.text:
                    call.first_token()
                yield delta
            call.succeed(collected.usage(), collected.text)
        except Exception as exc:
            error = exc if isinstance(exc, SmallfirstError) else UpstreamError(str(exc))
            parts = collected.parts
            call.fail(error, admission.delivered_usage(call.estimate, parts) if parts else None)
            raise
        finally:
            if not call.finished:
                call.disconnected(admission.delivered_usage(call.estimate, collected.parts))
            await deltas.aclose()  # type: ignore[attr-defined]
            record_retries(call, log)

    async def aclose(self) -> None:
        """Flush the ledger and close HTTP clients and loaded models."""
        if self._started:
            await self._gateway.stop()
        else:
            await self._gateway.registry.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _generate(self, endpoint: str, model: str, request: AnyRequest) -> Answer:
        call, target, route, log = await self._open(endpoint, model, request)
        return await self._answer(call, target, route, log, request)

    async def _answer(
        self, call: Call, target: Target, route: Route, log: HopLog, request: AnyRequest
    ) -> Answer:
        try:
            answer = await target.generate(request, **self._options(call, route, log))
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:  # a cascade's every hop is a row; elsewhere, retries and fallbacks
            if isinstance(target, CascadeTarget):
                record_hops(self._gateway, call.entry, log.hops)
            else:
                record_retries(call, log)
        call.routed(answer.route.model, answer.route.decision)
        if isinstance(target, CascadeTarget):
            call.spent_usd = answer.cost_usd
        call.succeed(answer.usage, answer.text)
        return answer

    async def _open(
        self, endpoint: str, model: str, request: AnyRequest
    ) -> tuple[Call, Target, Route, HopLog]:
        """Route and admit, as the gateway does; a failure here is a ledger row too."""
        gateway = self._gateway
        if not self._started and self._record:
            self._started = True
            await gateway.start()
        call = gateway.begin(endpoint)
        try:
            target = gateway.resolve(call, model)
            route = await gateway.route(call, target, request)
            tokens = admission.prompt_tokens(_body(request))
            max_tokens = request.params.max_tokens
            if isinstance(target, CascadeTarget):
                estimate = admission.for_cascade(target.cascade, tokens, max_tokens)
            else:
                estimate = admission.for_model(route.model, tokens, max_tokens)
            await call.admit(estimate=estimate)
        except BaseException as exc:
            call.fail(exc)
            raise
        return call, target, route, HopLog(call.request_id)

    def _options(self, call: Call, route: Route, log: HopLog) -> dict[str, Any]:
        registry = self._gateway.registry
        return {
            "route": route,
            "log": log,
            "allow": lambda name: call.fits(registry.get(name)),
            "on_model": lambda name: call.routed(registry.get(name), None),
        }


class Client:
    """`AsyncClient`, blocking: every call runs on one background event loop, so loaded
    models and HTTP connections are reused from call to call."""

    def __init__(
        self,
        config: Config | str | Path | None = None,
        *,
        ledger_url: str | None = None,
        ledger: bool = True,
    ) -> None:
        self._async = AsyncClient(config, ledger_url=ledger_url, ledger=ledger)

    @property
    def registry(self):
        return self._async.registry

    def chat(self, messages: Messages, *, model: str = "auto", **params: Any) -> Answer:
        return run_blocking(self._async.chat(messages, model=model, **params))

    def complete(self, prompt: str, *, model: str = "auto", **params: Any) -> Answer:
        return run_blocking(self._async.complete(prompt, model=model, **params))

    def stream(self, messages: Messages, *, model: str = "auto", **params: Any) -> Iterator[Delta]:
        return iterate_blocking(self._async.stream(messages, model=model, **params))

    def close(self) -> None:
        run_blocking(self._async.aclose())

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def as_messages(messages: Messages) -> list[Message]:
    if isinstance(messages, str):
        return [Message("user", messages)]
    refuse_uncarried(list(messages))
    out: list[Message] = []
    for i, message in enumerate(messages):
        if isinstance(message, Message):
            out.append(message)
        elif isinstance(message, dict) and message.get("role") in ("system", "user", "assistant"):
            out.append(Message.from_openai(message))
        else:
            raise InvalidRequestError(
                f"messages[{i}] must be a Message or a dict with role system, user or assistant",
                param=f"messages[{i}]",
            )
    if not out:
        raise InvalidRequestError("messages must not be empty", param="messages")
    return out


def generation_params(params: dict[str, Any]) -> GenerationParams:
    known = GenerationParams.__dataclass_fields__
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidRequestError(
            f"unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(known)}",
            param=unknown[0],
        )
    return GenerationParams(**params)


def _body(request: AnyRequest) -> dict[str, Any]:
    """The request as the JSON body the gateway would have read (for the admission bound)."""
    if isinstance(request, ChatRequest):
        return {"messages": [{"role": m.role, "content": m.content} for m in request.messages]}
    return {"prompt": request.prompt}
