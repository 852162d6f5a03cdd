"""`model: "auto"` with `learn:` configured: each request served by its task's policy.

Without a policy (cold start) a task is served on the large model, so pointing an app at
`auto` never makes its answers worse. With one: a policy's student answers first when it is
sure of the input and knows its kind; otherwise the request goes up to the policy's rungs,
never sideways. The student's verdict is taken while routing (it costs an embedding, so off
the event loop), which makes every request a one-model route: the gateway admits exactly the
model that will answer and may still forward a large model's bytes as they are. Every route
reason names the task and the policy version. On a JSON task the student is an extraction
student (artifact `extraction_student`): its answer is the JSON object of the spans it found.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from smallfirst.config import CapabilitiesConfig, ModelConfig, Price
from smallfirst.distill.extraction_student import Extraction, ExtractionStudent
from smallfirst.distill.student import Prediction, TinyClassifier
from smallfirst.learning.gateway import GatewayLearning
from smallfirst.learning.inputs import input_text, whole_text
from smallfirst.learning.records import Policy
from smallfirst.learning.tiers import large_model, small_model
from smallfirst.models.pricing import price_of
from smallfirst.models.registry import ModelEntry, Registry
from smallfirst.routing.base import RouteDecision, Router, resolve_router
from smallfirst.routing.hops import HopLog
from smallfirst.routing.requirements import needs_of, no_model_serves, why_unfit
from smallfirst.server.admission import text_tokens
from smallfirst.target import Allow, Answer, AnyRequest, OnModel, Route, _OneModel, messages_of
from smallfirst.types import Delta, Generation, TokenLogprob, Usage

log = logging.getLogger("smallfirst.learning")
LABEL = "student_label"
CONFIDENCE = "student_confidence"


@dataclass(slots=True)
class _Student:
    entry: ModelEntry
    """Not in the registry: it answers only through this target, so it never becomes the
    default model, a fallback or a listed model."""
    classifier: TinyClassifier | ExtractionStudent


class LearnedTarget(_OneModel):
    kind = "router"

    def __init__(self, name: str, registry: Registry, learning: GatewayLearning) -> None:
        super().__init__(name, registry)
        self.learning = learning
        self.large = large_model(registry, learning.config)
        self.small = small_model(registry, learning.config)
        self._students: dict[str, _Student | None] = {}
        """By file; None: the file could not be read (logged once, the rungs answer)."""
        self.guard: Router | None = None
        """`routers.auto` when configured: its personal-data rule still decides first (a
        request it keeps `local` only is never served by a policy's remote model)."""
        if "auto" in registry.config.routers:
            self.guard = resolve_router("auto", registry)

    def policy(self, task: str | None) -> Policy | None:
        book = self.learning.policies
        return None if book is None else book.get(task)

    def route(self, request: AnyRequest, *, student: bool = True) -> Route:
        """`student=False`: the request carries a field only pass-through honours, so a
        student's label could not honour it; the policy's rungs answer."""
        task = request.task or "untasked"
        policy = self.policy(request.task)
        kept = self._kept_local(request, task, policy.version if policy else 0)
        if kept is not None:
            return kept
        if policy is None:
            shadow = f", shadowing {self.small}" if self.small else ""
            head = f"learned {task} v0: cold start"
            return self._climb([self.large], request, head, task, 0, tail=shadow)
        prefix = f"learned {task} v{policy.version}"
        if policy.serve != "student":
            return self._climb(
                policy.rungs, request, f"{prefix}: {policy.serve} policy", task, policy.version
            )
        if not student:
            why = "the request has fields only pass-through honours"
            return self._climb(
                policy.rungs,
                request,
                f"{prefix}: student skipped ({why}), served",
                task,
                policy.version,
            )
        return self._by_student(policy, request, prefix, task)

    def _kept_local(self, request: AnyRequest, task: str, version: int) -> Route | None:
        """The configured router's verdict when it keeps the request on a `local` model."""
        if self.guard is None:
            return None
        decision = self.guard.decide(messages_of(request))
        if not decision.details.get("local_only"):
            return None
        reason = f"learned {task} v{version}: {decision.reason} (routers.auto)"
        return Route(
            self.registry.get(decision.model), replace(decision, router=self.name, reason=reason)
        )

    async def aroute(self, request: AnyRequest, *, student: bool = True) -> Route:
        """Off the event loop when deciding costs CPU: a student embeds the input, and a
        configured router may too."""
        policy = self.policy(request.task)
        if self.guard is not None or (student and policy is not None and policy.serve == "student"):
            return await asyncio.to_thread(self.route, request, student=student)
        return self.route(request, student=student)

    def _by_student(self, policy: Policy, request: AnyRequest, prefix: str, task: str) -> Route:
        version = policy.version
        found = self._student(policy)
        if found is None:
            return self._climb(
                policy.rungs, request, f"{prefix}: student file unreadable, served", task, version
            )
        why = why_unfit(found.entry, request, needs_of(request))
        text = input_text(request).strip()
        if why is not None or not text:
            why = why or "no input text"
            return self._climb(
                policy.rungs, request, f"{prefix}: student skipped ({why}), served", task, version
            )
        if isinstance(found.classifier, ExtractionStudent):
            return self._by_extraction(found, found.classifier, text, prefix, request, policy)
        try:
            prediction = found.classifier.predict([text])[0]
        except Exception:  # a student that cannot run must not fail the request
            log.exception("learning: the student of %s v%s failed", task, version)
            head = f"{prefix}: student failed, served"
            return self._climb(policy.rungs, request, head, task, version)
        if not prediction.answered:
            head = f"{prefix}: student deferred ({_deferral(prediction, found.classifier)}), served"
            return self._climb(policy.rungs, request, head, task, version)
        sure = f"confidence {prediction.confidence:.3f}"
        reason = f"{prefix}: student answered {prediction.label!r} ({sure})"
        details = {"task": task, "policy_version": version}
        details |= {LABEL: prediction.label, CONFIDENCE: prediction.confidence}
        decision = RouteDecision(
            found.entry.name, self.name, reason, prediction.confidence, details
        )
        return Route(found.entry, decision)

    def _by_extraction(
        self,
        found: _Student,
        student: ExtractionStudent,
        text: str,
        prefix: str,
        request: AnyRequest,
        policy: Policy,
    ) -> Route:
        """The extraction student's JSON object when it is sure, else the policy's rungs."""
        task, version = policy.task, policy.version
        try:
            extraction = student.predict([text])[0]
        except Exception:  # a student that cannot run must not fail the request
            log.exception("learning: the extraction student of %s v%s failed", task, version)
            head = f"{prefix}: extraction student failed, served"
            return self._climb(policy.rungs, request, head, task, version)
        required = (request.params.json_schema or {}).get("required") or []
        missing = [name for name in required if name not in extraction.values]
        if extraction.answered and missing:
            why = f"the schema requires {missing[0]!r}"
            head = f"{prefix}: extraction student deferred ({why}), served"
            return self._climb(policy.rungs, request, head, task, version)
        if not extraction.answered:
            why = _extraction_deferral(extraction, student)
            head = f"{prefix}: extraction student deferred ({why}), served"
            return self._climb(policy.rungs, request, head, task, version)
        answer = extraction.text
        reason = (
            f"{prefix}: extraction student answered {answer} "
            f"(confidence {extraction.confidence:.3f})"
        )
        details = {"task": task, "policy_version": version}
        details |= {LABEL: answer, CONFIDENCE: extraction.confidence}
        decision = RouteDecision(
            found.entry.name, self.name, reason, extraction.confidence, details
        )
        return Route(found.entry, decision)

    def _climb(
        self,
        rungs: list[str],
        request: AnyRequest,
        head: str,
        task: str,
        version: int,
        tail: str = "",
    ) -> Route:
        """The first rung (then the large model) that can serve the request; up only. The
        reason reads `<head> on <model> (<rungs passed over and why>)<tail>`."""
        ladder = [*rungs, *([] if self.large in rungs else [self.large])]
        needs = needs_of(request)
        passed: list[str] = []
        for name in ladder:
            if name not in self.registry.entries:  # a policy outlives a config change
                passed.append(f"{name} is not configured")
                continue
            entry = self.registry.get(name)
            unfit = why_unfit(entry, request, needs)
            if unfit is None:
                over = f" ({'; '.join(passed)})" if passed else ""
                reason = f"{head} on {name}{over}{tail}"
                details = {"task": task, "policy_version": version}
                return Route(entry, RouteDecision(entry.name, self.name, reason, None, details))
            passed.append(unfit)
        no_model_serves(needs, passed)

    def _student(self, policy: Policy) -> _Student | None:
        """The policy's student, loaded once per file (a file that cannot be read is
        logged and skipped: the rungs answer)."""
        extraction = "extraction_student" in policy.artifacts
        path = policy.artifacts.get("extraction_student" if extraction else "student")
        if not path:
            return None
        if path in self._students:
            return self._students[path]
        try:
            classifier: TinyClassifier | ExtractionStudent = (
                ExtractionStudent.load(path) if extraction else TinyClassifier.load(path)
            )
        except Exception:
            log.exception(
                "learning: cannot load the student of %s v%s", policy.task, policy.version
            )
            self._students[path] = None
            return None
        config = ModelConfig(
            name=f"learned-{policy.task}-v{policy.version}",
            backend="student",
            tier="tiny",
            price=Price(input=0, output=0),
            options={"path": path},
            # an extraction student answers JSON objects; a schema's required fields it
            # did not find defer the request (`_by_extraction`)
            capabilities=CapabilitiesConfig(json_schema=True if extraction else None),
        )
        found = self._students[path] = _Student(ModelEntry(config, price_of(config)), classifier)
        return found

    @staticmethod
    def in_process(route: Route) -> bool:
        """Is this route a student's answer (given while routing, nothing to forward)?"""
        return route.decision is not None and LABEL in route.decision.details

    async def generate(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> Answer:
        route = route or await self.aroute(request)
        if not self.in_process(route):
            return await super().generate(
                request, route=route, log=log, allow=allow, on_model=on_model
            )
        request_id = log.request_id if log is not None else HopLog().request_id
        return Answer(_student_answer(route, request), route, [], 0.0, request_id)

    async def stream(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> AsyncIterator[Delta]:
        route = route or await self.aroute(request)
        if not self.in_process(route):
            async for delta in super().stream(
                request, route=route, log=log, allow=allow, on_model=on_model
            ):
                yield delta
            return
        generation = _student_answer(route, request)
        yield Delta(text=generation.text, logprobs=generation.logprobs)
        yield Delta(finish_reason=generation.finish_reason, usage=generation.usage)


def _student_answer(route: Route, request: AnyRequest) -> Generation:
    """The student's label. Its tokens are estimated (no tokenizer runs): the student costs
    nothing, but the ledger prices what the baseline model would have cost for the same
    prompt and answer, which is what the student saved."""
    assert route.decision is not None
    label = str(route.decision.details[LABEL])
    confidence = float(route.decision.details[CONFIDENCE])
    logprob = TokenLogprob(label, math.log(max(confidence, 1e-12)))
    usage = Usage(text_tokens(whole_text(request)), text_tokens(label))
    return Generation(text=label, model=route.model.name, usage=usage, logprobs=[logprob])


def _deferral(prediction: Prediction, student: TinyClassifier) -> str:
    if prediction.reason == "unfamiliar":
        least = student.similarity_threshold
        return f"unfamiliar input: similarity {prediction.similarity:.3f} < {least:.3f}"
    if prediction.reason == "background":
        return "the input looks like background traffic"
    return f"unsure: confidence {prediction.confidence:.3f} < {student.threshold:.3f}"


def _extraction_deferral(extraction: Extraction, student: ExtractionStudent) -> str:
    reason = extraction.reason
    if reason == "unfamiliar":
        least = student.familiarity_threshold
        return f"unfamiliar input: {extraction.familiarity:.0%} known words < {least:.0%}"
    if reason == "repeated":
        return "a field found twice"
    return f"unsure: confidence {extraction.confidence:.3f} < {student.threshold:.3f}"
