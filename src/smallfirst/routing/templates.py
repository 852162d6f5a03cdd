"""A task's fixed template, learned from its prompts, so a router embeds what varies.

Real traffic is a fixed template (system prompt, instructions, few-shot examples) around a
variable part (the question). An embedder with a token limit that reads a long shared preamble
first sees only the preamble: every prompt embeds alike and the router scores them all the
same. Here a template is the run of whole lines that at least MIN_PROMPTS prompts begin (or
end) with, at least MIN_CHARS long; several templates may be learned from mixed traffic. A
prompt is split into its fixed part (the longest template it starts / ends with) and the rest.

Learning needs prompts only, no outcomes: a router can learn the template of new traffic from
the unlabelled prompts it is calibrated on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

MIN_PROMPTS = 5
MIN_CHARS = 32


@dataclass(slots=True)
class Template:
    prefixes: list[str] = field(default_factory=list)
    """Fixed openings, longest first."""
    suffixes: list[str] = field(default_factory=list)
    """Fixed endings, longest first."""

    def split(self, text: str) -> tuple[str, str]:
        """(fixed, variable); the variable part is never empty (then all of it is variable)."""
        head = next((p for p in self.prefixes if text.startswith(p)), "")
        rest = text[len(head) :]
        tail = next((s for s in self.suffixes if rest.endswith(s) and len(s) < len(rest)), "")
        variable = rest[: len(rest) - len(tail)]
        if not variable.strip():
            return "", text
        return "\n".join(part.strip() for part in (head, tail) if part.strip()), variable

    def to_json(self) -> dict[str, list[str]]:
        return {"prefixes": list(self.prefixes), "suffixes": list(self.suffixes)}

    @classmethod
    def from_json(cls, data: dict | None) -> Template:
        data = data or {}
        return cls(list(data.get("prefixes", [])), list(data.get("suffixes", [])))

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.suffixes)


def learn_template(
    prompts: Iterable[str], min_prompts: int = MIN_PROMPTS, min_chars: int = MIN_CHARS
) -> Template:
    """The shared openings and endings (whole lines) of `prompts`."""
    texts = list(prompts)
    prefixes = _shared_heads(texts, min_prompts, min_chars)
    reversed_tails = _shared_heads([_reverse_lines(t) for t in texts], min_prompts, min_chars)
    return Template(prefixes, [_reverse_lines(s) for s in reversed_tails])


def _shared_heads(texts: list[str], min_prompts: int, min_chars: int) -> list[str]:
    """Per prompt, its longest line-boundary opening shared by >= min_prompts prompts."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_line_heads(text))
    found = set()
    for text in texts:
        shared = [h for h in _line_heads(text) if counts[h] >= min_prompts and len(h) >= min_chars]
        if shared:
            found.add(max(shared, key=len))
    return sorted(found, key=len, reverse=True)


def _line_heads(text: str) -> list[str]:
    """Openings of `text` ending at a line break (the break included), shortest first; the
    whole text is not one of them (something must vary)."""
    heads, start = [], 0
    while (end := text.find("\n", start)) != -1 and end + 1 < len(text):
        heads.append(text[: end + 1])
        start = end + 1
    return heads


def _reverse_lines(text: str) -> str:
    return "\n".join(reversed(text.split("\n")))
