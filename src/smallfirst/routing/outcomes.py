"""Outcome files: for each prompt, how well each model answered. What routers learn from.

Accepted as they come from the tools people already use:
- CSV (one file or a directory of them): a `prompt` column plus one numeric or true/false column
  per model (RouteLLM's GSM8K and MMLU response files); `*_response` text columns are ignored.
- JSONL / JSON list: `{"prompt": ..., "scores": {model: score}}`, flat `{"prompt", model: score}`,
  `{"question", "scores"}` (LLMRouter), or `{"messages": [...]}` for multi-turn prompts.
- MT-Bench judgements (`question_id, model, turn, score` rows) joined with the question file
  beside them (`*question.jsonl`); turn 2 carries turn 1 as context.
Prices come from `--cost model=price` or an LLMRouter-style `default_llm.json` beside the file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.errors import InvalidRequestError

csv.field_size_limit(1 << 30)

PROMPT_KEYS = ("prompt", "question", "query", "input", "text")
TEXT_SUFFIXES = ("response", "output", "answer")
"""Columns holding a model's text, never its score (RouteLLM's `<model>_response`)."""
_BOOL = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


class OutcomesError(InvalidRequestError):
    """An outcome file that cannot be used; the message names the file and what is wrong."""


@dataclass(slots=True)
class Outcomes:
    turns: list[list[str]]
    """User turns per item; the last is the one being answered, earlier ones are context."""
    models: list[str]
    scores: np.ndarray
    """(items, models) float scores as given (bool -> 0/1)."""
    costs: dict[str, float] = field(default_factory=dict)
    """Price per model (e.g. $/Mtok); empty when the file says nothing about cost."""
    groups: list[str] | None = None
    """Items that must stay in the same cross-validation fold (the turns of one question)."""
    source: str = ""
    skipped: int = 0
    """Rows left out because a selected model's score was blank or missing."""
    grouped_by: str = ""
    """`question`: a group is one conversation's turns (MT-Bench); `file`: one CSV per group."""

    def __len__(self) -> int:
        return len(self.turns)

    def subset(self, index: Iterable[int]) -> Outcomes:
        idx = list(index)
        return Outcomes(
            turns=[self.turns[i] for i in idx],
            models=list(self.models),
            scores=self.scores[idx],
            costs=dict(self.costs),
            groups=None if self.groups is None else [self.groups[i] for i in idx],
            source=self.source,
            skipped=self.skipped,
            grouped_by=self.grouped_by,
        )

    def select_models(self, names: list[str]) -> Outcomes:
        unknown = [n for n in names if n not in self.models]
        if unknown:
            raise OutcomesError(
                f"{self.source}: unknown model column(s) {unknown}; available: {self.models}"
            )
        cols = [self.models.index(n) for n in names]
        out = self.subset(range(len(self)))
        out.models, out.scores = list(names), self.scores[:, cols]
        return out


def load_outcomes(
    path: str | Path,
    models: list[str] | None = None,
    prompt_column: str | None = None,
    exclude: str | Path | None = None,
) -> Outcomes:
    """Read any supported outcome file or directory, optionally keeping some models only."""
    path = Path(path)
    if not path.exists():
        raise OutcomesError(f"outcome file {path} does not exist")
    if path.is_dir():
        outcomes = _load_csv_dir(path, prompt_column, models)
    elif path.suffix.lower() == ".csv":
        outcomes = _from_rows(_read_csv(path), str(path), prompt_column, models)
    else:
        outcomes = _load_json_like(path, prompt_column, models)
    if not outcomes.costs:
        outcomes.costs = _sibling_prices(path, outcomes.models)
    if exclude is not None:
        outcomes = drop_prompts(outcomes, load_prompt_set(exclude))
    if models:
        outcomes = outcomes.select_models(models)
    if len(outcomes) == 0:
        raise OutcomesError(f"{path}: no rows left to learn from")
    return outcomes


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _load_csv_dir(path: Path, prompt_column: str | None, wanted: list[str] | None) -> Outcomes:
    files = sorted(path.glob("*.csv"))
    if not files:
        raise OutcomesError(f"{path}: directory holds no .csv files")
    parts = [_from_rows(_read_csv(f), str(f), prompt_column, wanted) for f in files]
    models = parts[0].models
    for part in parts[1:]:
        if part.models != models:
            raise OutcomesError(
                f"{part.source}: model columns {part.models} differ from {files[0]}'s {models}"
            )
    return Outcomes(
        turns=[t for p in parts for t in p.turns],
        models=models,
        scores=np.vstack([p.scores for p in parts]),
        groups=[Path(p.source).stem for p in parts for _ in p.turns],
        source=str(path),
        skipped=sum(p.skipped for p in parts),
        grouped_by="file",
    )


def _load_json_like(path: Path, prompt_column: str | None, wanted: list[str] | None) -> Outcomes:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise OutcomesError(f"{path}: the file is empty")
    try:
        if text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise OutcomesError(f"{path}: not valid JSON/JSONL ({exc})") from None
    if rows and isinstance(rows[0], dict) and {"question_id", "model", "score"} <= rows[0].keys():
        return _mt_bench(rows, path, wanted)
    return _from_rows(rows, str(path), prompt_column, wanted)


def _from_rows(
    rows: list[Any], source: str, prompt_column: str | None, wanted: list[str] | None = None
) -> Outcomes:
    if not rows:
        raise OutcomesError(f"{source}: the file has no rows")
    if not isinstance(rows[0], dict):
        raise OutcomesError(f"{source}: each row must be an object with a prompt and scores")
    key = _prompt_key(rows[0], source, prompt_column)
    flat = [_flatten(row, key) for row in rows]
    models = _score_columns(flat, key, source) if not wanted else _known(flat, key, wanted, source)
    scores: list[list[float]] = []
    turns: list[list[str]] = []
    skipped = 0
    for i, row in enumerate(flat):
        values = [_score(row.get(model), source, i, model) for model in models]
        if any(v is None for v in values):
            skipped += 1
            continue
        turns.append(prompt_turns(row.get(key), source, i))
        scores.append([float(v) for v in values if v is not None])
    return Outcomes(
        turns=turns,
        models=models,
        scores=np.array(scores, dtype=np.float64).reshape(len(scores), len(models)),
        source=source,
        skipped=skipped,
    )


def _score_columns(flat: list[dict[str, Any]], key: str, source: str) -> list[str]:
    """Columns whose first non-blank value is a number or true/false (text columns are not)."""
    columns = [k for k in flat[0] if k != key and not k.endswith(TEXT_SUFFIXES)]
    models = []
    for column in columns:
        first = next((row.get(column) for row in flat if not _blank(row.get(column))), None)
        if first is not None and _numeric(first) is not None:
            models.append(column)
    if not models:
        raise OutcomesError(
            f"{source}: no score columns found beside {key!r}; "
            f"columns: {list(flat[0])} (scores must be numbers or true/false)"
        )
    return models


def _known(flat: list[dict[str, Any]], key: str, wanted: list[str], source: str) -> list[str]:
    available = [k for k in flat[0] if k != key]
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise OutcomesError(f"{source}: unknown model column(s) {unknown}; available: {available}")
    return list(wanted)


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return bool(np.isnan(value))
    return isinstance(value, str) and not value.strip()


def _score(value: Any, source: str, i: int, model: str) -> float | None:
    """The score as a float; None when blank (the row is skipped); an error when it is text."""
    if _blank(value):
        return None
    number = _numeric(value)
    if number is None:
        raise OutcomesError(
            f"{source}: row {i + 1}: score for {model!r} is {value!r}, not a number or true/false"
        )
    return number


def _prompt_key(row: dict[str, Any], source: str, wanted: str | None) -> str:
    if wanted:
        if wanted not in row:
            raise OutcomesError(f"{source}: no column {wanted!r}; columns: {list(row)}")
        return wanted
    for key in (*PROMPT_KEYS, "messages", "turns"):
        if key in row:
            return key
    raise OutcomesError(
        f"{source}: no prompt column; expected one of {[*PROMPT_KEYS, 'messages']}, got {list(row)}"
    )


def _flatten(row: dict[str, Any], prompt_key: str) -> dict[str, Any]:
    """Scores nested under `scores` become columns of their own."""
    nested = row.get("scores")
    if isinstance(nested, dict):
        return {prompt_key: row.get(prompt_key), **nested}
    return row


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _BOOL:
            return _BOOL[text]
        try:
            return float(text)
        except ValueError:
            return None
    return None


def prompt_turns(value: Any, source: str, i: int) -> list[str]:
    """A prompt as user turns: a string, a list of strings, or OpenAI-style messages."""
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value:
        turns = [
            m if isinstance(m, str) else str(m.get("content", ""))
            for m in value
            if isinstance(m, str) or (isinstance(m, dict) and m.get("role", "user") == "user")
        ]
        if turns:
            return turns
    raise OutcomesError(f"{source}: row {i + 1}: empty or unreadable prompt {value!r}")


def _mt_bench(rows: list[dict[str, Any]], path: Path, wanted: list[str] | None) -> Outcomes:
    questions = _mt_bench_questions(path)
    found = sorted({r["model"] for r in rows})
    unknown = [m for m in wanted or [] if m not in found]
    if unknown:
        raise OutcomesError(f"{path}: unknown model(s) {unknown}; judged models: {found}")
    models = list(wanted) if wanted else found
    table: dict[tuple[Any, int], dict[str, float]] = {}
    for r in rows:
        table.setdefault((r["question_id"], int(r.get("turn", 1))), {})[r["model"]] = r["score"]
    asked = [k for k in sorted(table) if k[0] in questions]
    keys = [k for k in asked if all(m in table[k] for m in models)]
    if not keys:
        raise OutcomesError(f"{path}: no question/turn has a judgement for every model")
    turns = [questions[qid][:turn] for qid, turn in keys]
    scores = np.array([[float(table[k][m]) for m in models] for k in keys])
    return Outcomes(
        turns,
        models,
        scores,
        groups=[str(k[0]) for k in keys],
        source=str(path),
        skipped=len(asked) - len(keys),
        grouped_by="question",
    )


def _mt_bench_questions(path: Path) -> dict[Any, list[str]]:
    candidates = sorted(path.parent.glob("*question*.jsonl"))
    if not candidates:
        raise OutcomesError(
            f"{path}: MT-Bench judgements need the question file (e.g. mt_bench__question.jsonl) "
            "in the same directory"
        )
    questions = {}
    for line in candidates[0].read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            questions[q["question_id"]] = list(q["turns"])
    return questions


def _sibling_prices(path: Path, models: list[str]) -> dict[str, float]:
    """LLMRouter keeps $/Mtok in default_llm.json; use it when it names every model."""
    folder = path if path.is_dir() else path.parent
    file = folder / "default_llm.json"
    if not file.exists():
        return {}
    return load_prices(file, models)


def load_prices(file: str | Path, models: list[str]) -> dict[str, float]:
    """Blended $/Mtok ((input + output) / 2) per model from an LLMRouter-style JSON file."""
    data = json.loads(Path(file).read_text(encoding="utf-8"))
    prices = {}
    for model in models:
        info = data.get(model)
        if isinstance(info, dict) and "input_price" in info:
            prices[model] = (float(info["input_price"]) + float(info["output_price"])) / 2
    return prices if len(prices) == len(models) else {}


def load_prompt_set(path: str | Path) -> set[str]:
    """Prompts listed in a JSONL file (`eval_prompt` or `prompt` per line), whitespace-trimmed."""
    found = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            text = row.get("eval_prompt", row.get("prompt"))
            if isinstance(text, str):
                found.add(text.strip())
    return found


def drop_prompts(outcomes: Outcomes, prompts: set[str]) -> Outcomes:
    """Remove items with any turn in `prompts`; for conversations (MT-Bench) the whole question
    goes when any of its turns is listed, as RouteLLM's evaluation does."""
    hit = [any(t.strip() in prompts for t in turns) for turns in outcomes.turns]
    if outcomes.grouped_by == "question" and outcomes.groups is not None:
        dropped = {g for g, h in zip(outcomes.groups, hit, strict=True) if h}
        hit = [g in dropped for g in outcomes.groups]
    return outcomes.subset(i for i, h in enumerate(hit) if not h)


def first_turn_per_question(outcomes: Outcomes) -> Outcomes:
    """One item per conversation, routed on its first turn and scored by the mean over its
    turns: RouteLLM's MT-Bench protocol (the model picked on turn 1 answers every turn)."""
    if outcomes.grouped_by != "question" or outcomes.groups is None:
        return outcomes
    order: dict[str, list[int]] = {}
    for i, g in enumerate(outcomes.groups):
        order.setdefault(g, []).append(i)
    firsts = [min(idx, key=lambda i: len(outcomes.turns[i])) for idx in order.values()]
    return Outcomes(
        turns=[outcomes.turns[i][:1] for i in firsts],
        models=list(outcomes.models),
        scores=np.array([outcomes.scores[idx].mean(axis=0) for idx in order.values()]),
        costs=dict(outcomes.costs),
        groups=list(order),
        source=outcomes.source,
        skipped=outcomes.skipped,
        grouped_by="",
    )
