"""Rules router: plain, auditable conditions checked in order; the first that matches decides.

    routers:
      auto:
        kind: rules
        local_model: gemma-3-270m      # where PII goes; default: the first llama.cpp model
        rules:
          - {max_chars: 300, model: gemma-3-270m}
          - {task: [code, math], model: gpt-4o}
          - {keywords: [contract, diagnosis], model: gpt-4o}
          - {regex: "(?i)step by step", model: gpt-4o}
        default: learned               # a model, or another entry under `routers:`

Prompts with personal data (e-mail, phone, card, IBAN, SSN) always stay on the local model,
before any rule, unless `pii_to_local: false`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from smallfirst.errors import ConfigError, ModelNotFoundError
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


RULE_KEYS = {"model", "min_chars", "max_chars", "task", "keywords", "regex"}


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
        self.pii_to_local = pii_to_local

    def decide(self, messages: list[Message]) -> RouteDecision:
        text = "\n".join(m.content for m in messages if m.role in ("system", "user"))
        if self.pii_to_local and self.local_model:
            pii = find_pii(text)
            if pii:
                return RouteDecision(
                    self.local_model, self.name, f"rule: pii ({pii}) -> local only", 1.0
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


def build_rules(name: str, threshold: str | None, registry: Registry) -> RulesRouter:
    spec = find_spec(name, "rules", registry) or {}
    rules = [_rule(name, i, raw, registry) for i, raw in enumerate(spec.get("rules") or [], 1)]
    local = spec.get("local_model") or next(
        (e.name for e in registry.by_tier() if e.config.backend == "llamacpp"), None
    )
    if local is not None:
        _configured(name, str(local), registry)
    return RulesRouter(
        name, rules, _default(name, spec, registry), local, bool(spec.get("pii_to_local", True))
    )


def _rule(name: str, i: int, raw: Any, registry: Registry) -> Rule:
    if not isinstance(raw, dict) or "model" not in raw:
        raise ConfigError(f"routers.{name}.rules[{i}]: each rule needs a `model` and conditions")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise ConfigError(
            f"routers.{name}.rules[{i}]: unknown key(s) {sorted(unknown)}; known: "
            f"{sorted(RULE_KEYS)}"
        )
    return Rule(
        _configured(name, str(raw["model"]), registry), {k: raw[k] for k in raw if k != "model"}
    )


def _default(name: str, spec: dict[str, Any], registry: Registry) -> str | Router:
    target = spec.get("default")
    if target is None:
        return registry.default_model
    target = str(target)
    other = registry.config.routers.get(target)
    if other is not None and target != name:
        return build_router(str(other.get("kind", "")), target, other.get("threshold"), registry)
    return _configured(name, target, registry)


def _configured(name: str, model: str, registry: Registry) -> str:
    if model not in registry.entries:
        raise ModelNotFoundError(
            f"router {name!r} names model {model!r}, which is not configured "
            f"(configured: {', '.join(registry.entries)})",
            param="model",
        )
    return model


register_router_kind("rules", build_rules)
