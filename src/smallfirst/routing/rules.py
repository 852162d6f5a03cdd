"""Rules router: plain, auditable conditions checked in order; the first that matches decides.

    routers:
      auto:
        kind: rules
        local_model: gemma-3-270m      # where PII goes; default: the first `local` model
        rules:
          - {max_chars: 300, model: gemma-3-270m}
          - {task: [code, math], model: gpt-4o}
          - {keywords: [contract, diagnosis], model: gpt-4o}
          - {regex: "(?i)step by step", model: gpt-4o}
        default: learned               # a model, or another entry under `routers:`

Prompts with personal data (e-mail, phone, card, IBAN, SSN) always stay on a model declared
`local` (its capabilities), before any rule, unless `pii_to_local: false`. With no local model
they are refused with a 403 naming the fix: personal data never falls through to a cloud model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from smallfirst.config import RulesRouterConfig
from smallfirst.errors import PermissionDeniedError
from smallfirst.models.registry import Registry
from smallfirst.routing.base import RouteDecision, Router, build_router, register_router_kind
from smallfirst.routing.specs import find_spec
from smallfirst.types import Message

PII_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "card": re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b"),
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "phone": re.compile(
        r"(?<![\w.+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?\(?\d{2,4}\)?[ .-]\d{3,4}[ .-]\d{3,4}"
        r"(?![ .-]?\d)"
    ),
}

PII_NAMES = {
    "email": "e-mail address",
    "card": "card number",
    "iban": "IBAN",
    "ssn": "social security number",
    "phone": "phone number",
}

TASK_PATTERNS: dict[str, re.Pattern[str]] = {
    "code": re.compile(
        r"```|\bdef \w+\(|\bclass \w+|#include|\bfunction\b|\bSELECT\b.+\bFROM\b|"
        r"\b(python|javascript|typescript|java|rust|golang|c\+\+|sql|regex|bash)\b|"
        r"\b(code|compile|debug|stack trace|traceback)\b",
        re.IGNORECASE,
    ),
    "math": re.compile(
        r"\d\s*[-+*/^=]\s*\d|\b(solve|equation|integral|derivative|probability|prove|theorem|"
        r"calculate|how many|how much|percent)\b",
        re.IGNORECASE,
    ),
    "summarize": re.compile(r"\b(summari[sz]e|summary|tl;?dr|key points)\b", re.IGNORECASE),
    "translate": re.compile(r"\btranslat(e|ion)\b|\binto (english|french|spanish|german)\b", re.I),
    "extract": re.compile(r"\b(extract|parse|fill in|as json|in json)\b", re.IGNORECASE),
    "classify": re.compile(r"\b(classify|categori[sz]e|sentiment|which category)\b", re.I),
}


def find_pii(text: str) -> str | None:
    """The kind of the first personal data found, or None. Card numbers must pass Luhn."""
    for kind, pattern in PII_PATTERNS.items():
        for match in pattern.finditer(text):
            if kind != "card" or _luhn(re.sub(r"\D", "", match.group())):
                return kind
    return None


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return 13 <= len(digits) <= 19 and total % 10 == 0


def detect_task(text: str) -> str:
    """A coarse task label from keywords: code, math, summarize, translate, extract, classify,
    or chat."""
    for task, pattern in TASK_PATTERNS.items():
        if pattern.search(text):
            return task
    return "chat"


@dataclass(slots=True)
class Rule:
    model: str
    conditions: dict[str, Any]

    def matches(self, text: str, task: str) -> str | None:
        """A short description of why the rule matched, or None."""
        c = self.conditions
        why = []
        if "min_chars" in c:
            if len(text) < int(c["min_chars"]):
                return None
            why.append(f"length {len(text)} >= {c['min_chars']}")
        if "max_chars" in c:
            if len(text) > int(c["max_chars"]):
                return None
            why.append(f"length {len(text)} <= {c['max_chars']}")
        if "task" in c:
            wanted = c["task"] if isinstance(c["task"], list) else [c["task"]]
            if task not in wanted:
                return None
            why.append(f"task {task}")
        if "keywords" in c:
            hit = next((k for k in c["keywords"] if _word(k).search(text)), None)
            if hit is None:
                return None
            why.append(f"keyword {hit!r}")
        if "regex" in c:
            if not re.search(c["regex"], text):
                return None
            why.append(f"regex {c['regex']!r}")
        return ", ".join(why) or "always"


def _word(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)


class RulesRouter:
    def __init__(
        self,
        name: str,
        rules: list[Rule],
        default: str | Router,
        local_model: str | None,
        pii_to_local: bool = True,
    ) -> None:
        self.name = name
        self.rules = rules
        self.default = default
        self.local_model = local_model
        """None: no model is declared local, so personal data is refused (fails closed)."""
        self.pii_to_local = pii_to_local

    def decide(self, messages: list[Message]) -> RouteDecision:
        text = "\n".join(m.content for m in messages if m.role in ("system", "user"))
        if self.pii_to_local:
            pii = find_pii(text)
            if pii:
                if self.local_model is None:
                    raise PermissionDeniedError(
                        f"this request contains personal data ({PII_NAMES[pii]}) and no model "
                        "is declared local, so it is not sent anywhere: add `capabilities: "
                        "{local: true}` to a self-hosted model in smallfirst.yaml (or set the "
                        "router's `local_model`)",
                        code="personal_data_needs_local_model",
                        param="messages",
                    )
                return RouteDecision(
                    self.local_model,
                    self.name,
                    f"rule: pii ({pii}) -> local only",
                    1.0,
                    {"pii": pii, "local_only": True},
                )
        last = next((m.content for m in reversed(messages) if m.role == "user"), text)
        task = detect_task(last)
        for i, rule in enumerate(self.rules, start=1):
            why = rule.matches(last, task)
            if why is not None:
                return RouteDecision(rule.model, self.name, f"rule {i}: {why} -> {rule.model}")
        if isinstance(self.default, str):
            return RouteDecision(self.default, self.name, f"no rule matched (task {task}): default")
        decision = self.default.decide(messages)
        decision.reason = f"no rule matched (task {task}); {decision.reason}"
        decision.router = self.name
        return decision


def local_model_for(spec: RulesRouterConfig, registry: Registry) -> str | None:
    """The configured `local_model` (checked local when the config loaded), else the default
    model when it is local, else the first local model by tier, else None."""
    if spec.local_model:
        return spec.local_model
    default = registry.get(registry.default_model)
    candidates = [default, *registry.by_tier()]
    return next((e.name for e in candidates if e.capabilities.local), None)


def build_rules(name: str, threshold: str | None, registry: Registry) -> RulesRouter:
    spec = find_spec(name, "rules", registry)
    if not isinstance(spec, RulesRouterConfig):
        spec = RulesRouterConfig(kind="rules")
    rules = [
        Rule(rule.model, rule.model_dump(exclude={"model"}, exclude_none=True))
        for rule in spec.rules
    ]
    return RulesRouter(
        name,
        rules,
        _default(name, spec, registry),
        local_model_for(spec, registry),
        spec.pii_to_local,
    )


def _default(name: str, spec: RulesRouterConfig, registry: Registry) -> str | Router:
    """Model and router names were checked when the config loaded."""
    target = spec.default
    if target is None:
        return registry.default_model
    other = registry.config.routers.get(target)
    if other is not None and target != name:
        return build_router(other.kind, target, getattr(other, "threshold", None), registry)
    return target


register_router_kind("rules", build_rules)
