"""Proof by simulation (issue 26, item 6): does `auto` that learns move each task down by
itself, and only as far as the evidence allows?

A stream of requests mixing three tasks goes through a LIVE gateway in this process (the real
app over httpx's ASGI transport, `learn:` configured, every request `model: "auto"`):

- banking77 intents: a classification prompt, the 77 intents listed in the system prompt,
  the customer message as the user turn (train and test splits);
- SNIPS slots as JSON extraction: the 39 slot names in the system prompt, `response_format:
  json_object`, gold = the first tagged span of each slot (train and validate, 7 intents);
- QMSum query answers (free text): the query's transcript span, cut to `--excerpt-chars`,
  and the query; a few hundred at most, since each costs the embedded model seconds.

Each task's items are drawn without replacement and never repeat, so every answer scored is to
an input nobody learnt from; the tasks are interleaved by one seeded shuffle (same seed, same
stream). Nothing here is tuned on the stream: prompts and stand-in settings were fixed first.

Small: the embedded Gemma 3 270M (`--small embedded`, the default) and the tier-0 students the
learner trains from the large model's answers. `--small replay` swaps Gemma for a replay at
`--small-accuracy` (for quick runs and the test). NO large model is reachable here: a replay
stand-in answers the gold answer with probability `--large-accuracy` (default 0.95, a strong
but fallible model) and otherwise another item's gold answer of the same task (a wrong but
well-formed intent, JSON object or summary), fixed by the seed; it is billed at gpt-4o list
prices ($2.50 / $10 per Mtok) on about four characters a token. Free text is judged by a
stand-in too (`JudgeStandIn`): it scores both answers against the QMSum reference answer with
ROUGE-L and calls them as good as each other when the weaker one reaches the weaker of the
stronger one's score and GOOD_ANSWER. It knows the reference, so it judges fairly rather than
by which model spoke, and small can win. It is billed at gpt-4o prices too.

Learning runs in the loop, at fixed points so reruns agree: `learn: {auto: false}`, and every
`--learn-every` requests the benchmark drains the shadow work, runs the learner once and
refreshes the gateway's policy book (what `learn: {auto: true}` does on a timer). The
shadow work is also drained every `--drain-every` requests, so the stream (replay answers in
milliseconds) never outruns the embedded model answering its shadow calls. The always-large
baseline is the same stream through a second gateway with `model: large`. The embedded
model's own cost is counted as $0 (it runs on the gateway's CPU).

Time: the embedded model's shadow calls dominate (12-27 s each, four at once, on two shared
cores at load 4-7: 1,500 requests took 25 minutes there, nothing moved down yet);
`--shadow-rate` trades evidence for time.

Printed per 1,000 requests and task: N, share per tier, accuracy against gold with its 95%
Wilson interval, always-large's accuracy on the same requests; and $ served + $ learning
(shadow, audit and judge calls) against always-large. A learning-curve PNG goes to `--png`.

    nice .venv/bin/python benchmarks/learning.py                       # 10,000 requests
    nice .venv/bin/python benchmarks/learning.py --requests 1500 --qmsum 10
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from sqlalchemy import func, select

from smallfirst.config import (
    CapabilitiesConfig,
    Config,
    LearnConfig,
    ModelConfig,
    Price,
    embedded_model,
)
from smallfirst.evaluate.metrics import rouge_l
from smallfirst.evaluate.stats import wilson
from smallfirst.models.base import StreamingProvider
from smallfirst.models.registry import register_backend
from smallfirst.models.replay import approx_tokens
from smallfirst.types import ChatRequest, CompletionRequest, Delta, Usage

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tasks"
GPT4O = Price(input=2.5, output=10.0)
"""$/Mtok of the large and judge stand-ins (gpt-4o's list price)."""
LARGE, JUDGE, SMALL_REPLAY = "large", "judge", "small"
GEMMA = embedded_model().name
WINDOW = 1000
DRAIN_EVERY = 20
"""Requests between waits for the shadow work (see `--drain-every`)."""
TIERS = ("student", "small", "large")
CLOSED_AFTER = 2000
"""Targets are checked on a closed-output task's traffic after its first 2,000 requests."""
TARGET_SHARE_BELOW = 0.70
TARGET_POINTS = 0.02
GOOD_ANSWER = 0.25
"""ROUGE-L against the QMSum reference at which an answer counts as a good one (for the judge
and for accuracy against gold alike): lenient, below the ~0.3 that fine-tuned summarisers
reach in the QMSum paper (Zhong et al., 2021), so a small model is not held to the reference
word for word."""
SNIPS_SHARE = 0.28
"""Share of the non-QMSum stream that is SNIPS (2,800 distinct utterances exist: 10,000
requests take 2,730 of them, banking77 the rest)."""


# -- the tasks --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    kind: str
    """How answers are scored against gold: `label`, `json` (the whole object) or `text`."""
    system: str
    max_tokens: int
    json_output: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    task: str
    split: str
    input: str
    """The user turn: what the replay looks up, what a student learns from."""
    gold: str


def banking77() -> tuple[TaskSpec, list[Item]]:
    folder = DATA / "banking77"
    labels = json.loads((folder / "categories.json").read_text())
    system = (
        "You sort messages that customers send to their bank. Reply with exactly one intent "
        "from this list and nothing else.\n\nIntents:\n" + "\n".join(labels)
    )
    rows: list[tuple[str, str, str]] = []
    for split in ("train", "test"):
        with (folder / f"{split}.csv").open(encoding="utf-8") as handle:
            rows += [(split, r["text"].strip(), r["category"]) for r in csv.DictReader(handle)]
    return TaskSpec("banking77", "label", system, 16), _distinct("banking77", rows)


def snips_slots() -> tuple[TaskSpec, list[Item]]:
    rows: list[tuple[str, str, str]] = []
    slots: set[str] = set()
    for path in sorted((DATA / "snips").glob("*_*.json")):
        split, intent = path.stem.split("_", 1)
        for utterance in json.loads(path.read_text(encoding="utf-8"))[intent]:
            pieces = utterance["data"]
            gold: dict[str, str] = {}
            for piece in pieces:
                if "entity" in piece:
                    slots.add(piece["entity"])
                    gold.setdefault(piece["entity"], piece["text"].strip())
            text = "".join(p["text"] for p in pieces).strip()
            rows.append((split, text, json.dumps(gold, sort_keys=True, ensure_ascii=False)))
    system = (
        "Extract the slots of a request made to a voice assistant. Reply with one JSON object "
        "whose keys are slot names from the list below and whose values are the exact words "
        "of the request that fill them. Leave out slots the request does not mention.\n\n"
        "Slots: " + ", ".join(sorted(slots))
    )
    return TaskSpec("snips_slots", "json", system, 96, json_output=True), _distinct(
        "snips_slots", rows
    )


def qmsum(excerpt_chars: int) -> tuple[TaskSpec, list[Item]]:
    system = (
        "You answer questions about a meeting from an excerpt of its transcript. "
        "Answer in two to four sentences."
    )
    rows: list[tuple[str, str, str]] = []
    lines = (DATA / "qmsum" / "val.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        meeting = json.loads(line)
        turns = meeting["meeting_transcripts"]
        for query in meeting["general_query_list"] + meeting["specific_query_list"]:
            spans = query.get("relevant_text_span") or [["0", str(len(turns) - 1)]]
            shown = [t for lo, hi in spans for t in turns[int(lo) : int(hi) + 1]]
            excerpt = "\n".join(f"{t['speaker']}: {t['content']}" for t in shown)
            text = f"Transcript excerpt:\n{excerpt[:excerpt_chars]}\n\nQuestion: {query['query']}"
            rows.append(("val", text, query["answer"].strip()))
    return TaskSpec("qmsum", "text", system, 160), _distinct("qmsum", rows)


def _distinct(task: str, rows: list[tuple[str, str, str]]) -> list[Item]:
    """One item per input; an input given two different gold answers is dropped (it cannot
    be scored)."""
    golds: dict[str, set[str]] = defaultdict(set)
    splits: dict[str, str] = {}
    for split, text, gold in rows:
        golds[text].add(gold)
        splits.setdefault(text, split)
    return [
        Item(task, splits[text], text, next(iter(answers)))
        for text, answers in golds.items()
        if text and len(answers) == 1
    ]


def load_tasks(excerpt_chars: int) -> tuple[dict[str, TaskSpec], dict[str, list[Item]]]:
    specs, pools = {}, {}
    for spec, items in (banking77(), snips_slots(), qmsum(excerpt_chars)):
        specs[spec.name], pools[spec.name] = spec, items
    return specs, pools


# -- the stream -------------------------------------------------------------------------------
def stream_counts(requests: int, qmsum_n: int, pools: dict[str, list[Item]]) -> dict[str, int]:
    qm = min(qmsum_n, len(pools["qmsum"]), requests)
    rest = requests - qm
    snips = min(len(pools["snips_slots"]), round(rest * SNIPS_SHARE))
    counts = {"banking77": rest - snips, "snips_slots": snips, "qmsum": qm}
    for task, n in counts.items():
        if n > len(pools[task]):
            raise SystemExit(f"{task}: {n} requests asked, {len(pools[task])} distinct items")
    return counts


def build_stream(pools: dict[str, list[Item]], counts: dict[str, int], seed: int) -> list[Item]:
    """Each task's items drawn without replacement, then all interleaved by one shuffle."""
    rng = random.Random(seed)
    picked: list[Item] = []
    for task in sorted(counts):
        pool = sorted(pools[task], key=lambda item: item.input)
        rng.shuffle(pool)
        picked += pool[: counts[task]]
    rng.shuffle(picked)
    return picked


# -- the stand-ins ----------------------------------------------------------------------------
def _unit(*parts: object) -> tuple[float, int]:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big")


def answers_at(
    pools: dict[str, list[Item]], accuracy: float, seed: int, who: str
) -> dict[str, str]:
    """input -> the stand-in's answer: gold with probability `accuracy`, else another gold
    answer of the same task; which items are wrong depends only on (who, seed, input)."""
    answers = {}
    for task, items in pools.items():
        golds = sorted({item.gold for item in items})
        for item in items:
            draw, pick = _unit(who, seed, task, item.input)
            if draw < accuracy or len(golds) < 2:
                answers[item.input] = item.gold
            else:
                others = [g for g in golds if g != item.gold]
                answers[item.input] = others[pick % len(others)]
    return answers


def write_book(answers: dict[str, str], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "answer"])
        writer.writerows(answers.items())
    return path


def judge_prefers(first: str, second: str, reference: str) -> str:
    """`first`, `second` or `tie`: both are scored against the reference answer by ROUGE-L,
    and the weaker is as good when it reaches the stronger's score or GOOD_ANSWER, whichever
    is lower (two good answers tie; a better answer wins against a poor one)."""
    a, b = rouge_l(first, reference), rouge_l(second, reference)
    if min(a, b) >= min(max(a, b), GOOD_ANSWER):
        return "tie"
    return "first" if a > b else "second"


class JudgeStandIn(StreamingProvider):
    """The judge model: finds the question in the judge prompt, reads the two answers and
    replies in the judge's format (`judge_reply`)."""

    def __init__(self, config: ModelConfig, references: dict[str, str]) -> None:
        self.name = config.name
        self.references = references
        """A QMSum question's user turn -> its reference answer."""

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        users = [m.content for m in request.messages if m.role == "user"]
        everything = "\n".join(m.content for m in request.messages)
        return self._reply(users[-1] if users else "", everything)

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        return self._reply(request.prompt, request.prompt)

    async def _reply(self, pair: str, everything: str) -> AsyncIterator[Delta]:
        """`pair`: the turn with the request and the two answers; `everything`: what the
        judge reads, its instructions too (what it is billed for)."""
        text = judge_reply(pair, self.references)
        yield Delta(text=text)
        usage = Usage(approx_tokens(everything), approx_tokens(text))
        yield Delta(finish_reason="stop", usage=usage)


JUDGE_LAYOUT = re.compile(
    r"Request:\n(?P<request>.*?)\n\nAnswer A:\n(?P<a>.*?)\n\nAnswer B:\n(?P<b>.*)"
    r"\n\nWhich answer is better\?",
    re.DOTALL,
)
"""The judge prompt of smallfirst/learning/verdicts.py (`judge_messages`)."""


def judge_reply(prompt: str, references: dict[str, str]) -> str:
    """`A`, `B` or `T` as `judge_prefers` decides; a prompt it cannot read or a request it
    has no reference for gets a reply that is none of them (no verdict, as from a real
    judge that rambles)."""
    found = JUDGE_LAYOUT.search(prompt)
    if found is None:
        return "I cannot read this comparison."
    asked = found["request"].strip()
    reference = references.get(asked)
    if reference is None and asked:  # the judge prompt cuts a long request short
        reference = next((ref for key, ref in references.items() if key.startswith(asked)), None)
    if reference is None:
        return "I do not know the answer to this request."
    return {"first": "A", "second": "B", "tie": "T"}[
        judge_prefers(found["a"], found["b"], reference)
    ]


# -- the gateway ------------------------------------------------------------------------------
@dataclass(slots=True)
class Settings:
    small: str = "embedded"
    small_accuracy: float = 0.6
    large_accuracy: float = 0.95
    learn_every: int = 500
    drain_every: int = DRAIN_EVERY
    window: int = WINDOW
    concurrency: int = 4
    threads: int | None = None
    budget_usd: float = 10.0
    shadow_rate: float | None = None
    audit_rate: float | None = None
    min_evidence: int | None = None
    target: float | None = None
    explicit_task: bool = False
    seed: int = 0


def small_model(settings: Settings, folder: Path, pools: dict[str, list[Item]]) -> ModelConfig:
    if settings.small == "embedded":
        gemma = embedded_model()
        gemma.threads, gemma.slots = settings.threads, max(1, settings.concurrency)
        return gemma
    book = answers_at(pools, settings.small_accuracy, settings.seed, "small")
    return ModelConfig(
        name=SMALL_REPLAY,
        backend="replay",
        tier="small",
        price=Price(input=0.0, output=0.0),
        options={"outcomes": str(write_book(book, folder / "small.csv"))},
        capabilities=CapabilitiesConfig(local=True, json_schema=True),
    )


def gateway_config(
    settings: Settings, folder: Path, pools: dict[str, list[Item]], learn: bool
) -> Config:
    large = answers_at(pools, settings.large_accuracy, settings.seed, "large")
    small = small_model(settings, folder, pools)
    models = [
        small,
        ModelConfig(
            name=LARGE,
            backend="replay",
            tier="large",
            price=GPT4O,
            options={"outcomes": str(write_book(large, folder / "large.csv"))},
            capabilities=CapabilitiesConfig(json_schema=True),  # as gpt-4o's structured output
        ),
        ModelConfig(name=JUDGE, backend="learning-judge", tier="large", price=GPT4O),
    ]
    tuned = {
        key: value
        for key in ("shadow_rate", "audit_rate", "min_evidence", "target")
        if (value := getattr(settings, key)) is not None
    }
    learning = LearnConfig(
        auto=False,
        reload_s=3600,  # the benchmark refreshes the policy book itself, after each learn
        budget_usd_per_day=settings.budget_usd,
        small_model=small.name,
        large_model=LARGE,
        judge_model=JUDGE,
        artifacts_dir=str(folder / "artifacts"),
        **tuned,
    )
    return Config(
        models=models,
        default_model=LARGE,
        baseline_model=LARGE,
        learn=learning if learn else None,
    )


def register_judge(pools: dict[str, list[Item]]) -> None:
    references = {item.input: item.gold for item in pools["qmsum"]}
    register_backend("learning-judge", lambda config: JudgeStandIn(config, references))


@dataclass(slots=True)
class Served:
    index: int
    task: str
    request_id: str
    model: str
    tier: str
    answer: str
    cost_usd: float
    correct: bool
    status: int = 200
    reason: str = ""


@dataclass(slots=True)
class Checkpoint:
    """After `requests` requests and a learner run: learning spend so far, each task's
    policy."""

    requests: int
    learning_usd: float
    learn_s: float
    """How long the learner's pass took."""
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    """What the learner said per task (promoted, kept, needs evidence, ...)."""


def correct(spec: TaskSpec, answer: str, gold: str) -> bool:
    if spec.kind == "label":
        return _plain(answer) == _plain(gold)
    if spec.kind == "json":
        return _fields(answer) == _fields(gold)
    return rouge_l(answer, gold) >= GOOD_ANSWER


def _plain(text: str) -> str:
    return " ".join(text.strip().strip("\"'`").lower().split()).rstrip(".!")


def _fields(text: str) -> dict[str, str] | None:
    """A JSON answer's filled slots, compared by value (case and spacing aside)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return {str(k): _plain(str(v)) for k, v in parsed.items() if v not in (None, "", [])}


def tier_of(headers: httpx.Headers, model: str) -> str:
    if model == LARGE:
        return "large"
    tier = headers.get("x-smallfirst-tier", "")
    return "student" if tier == "tiny" or model not in (GEMMA, SMALL_REPLAY) else "small"


class Run:
    """One pass of the stream through a gateway (learning, or always-large)."""

    def __init__(
        self, config: Config, folder: Path, specs: dict[str, TaskSpec], seed: int = 0
    ) -> None:
        from smallfirst.server import create_app

        self.seed = seed
        self.app = create_app(config, ledger_url=f"sqlite:///{folder}/ledger.db", auth=False)
        self.gateway = self.app.state.gateway
        self.specs = specs
        self.served: list[Served] = []
        self.checkpoints: list[Checkpoint] = []
        self.spend: dict[int, float] = {}
        """Requests so far -> learning spend so far, at the end of each window."""

    async def __aenter__(self) -> Run:
        await self.gateway.start()
        if self.gateway.learning is not None:
            self.gateway.learning.shadower.random.seed(self.seed)  # reruns shadow the same
        transport = httpx.ASGITransport(app=self.app)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=600)
        self.client = openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key="bench", http_client=self.http, max_retries=0
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.gateway.stop()

    async def ask(self, index: int, item: Item, model: str, explicit_task: bool) -> Served:
        spec = self.specs[item.task]
        extra: dict[str, Any] = {}
        if spec.json_output:
            extra["response_format"] = {"type": "json_object"}
        if explicit_task:
            extra["metadata"] = {"task": item.task}
        try:
            raw = await self.client.chat.completions.with_raw_response.create(
                model=model,
                messages=[
                    {"role": "system", "content": spec.system},
                    {"role": "user", "content": item.input},
                ],
                max_tokens=spec.max_tokens,
                temperature=0.0,
                **extra,
            )
        except openai.APIStatusError as failed:
            request_id = failed.response.headers.get("x-smallfirst-request-id", "")
            return Served(
                index,
                item.task,
                request_id,
                "",
                "error",
                "",
                0.0,
                False,
                failed.status_code,
                str(failed.message)[:200],
            )
        headers = raw.headers
        answer = raw.parse().choices[0].message.content or ""
        name = headers.get("x-smallfirst-model", "")
        return Served(
            index,
            item.task,
            headers.get("x-smallfirst-request-id", ""),
            name,
            tier_of(headers, name),
            answer,
            float(headers.get("x-smallfirst-cost-usd", "0")),
            correct(spec, answer, item.gold),
            reason=headers.get("x-smallfirst-route-reason", ""),
        )

    async def replay(
        self, stream: Sequence[Item], model: str, settings: Settings, progress: bool = False
    ) -> list[Served]:
        """Send the stream in groups of `concurrency`. With learning on, at the end of every
        window the shadow work is drained and the learning spend noted, and every
        `learn_every` requests the learner runs once."""
        started = time.perf_counter()
        step = max(1, settings.concurrency)
        for lo in range(0, len(stream), step):
            group = stream[lo : lo + step]
            self.served += await asyncio.gather(
                *(
                    self.ask(lo + i, item, model, settings.explicit_task)
                    for i, item in enumerate(group)
                )
            )
            done, last = lo + len(group), lo + len(group) == len(stream)
            if self.gateway.learning is not None:
                if done % settings.drain_every == 0 or last:
                    await self.gateway.learning.shadower.drain()
                if done % settings.window == 0 or last:
                    await self.gateway.learning.shadower.drain()
                    self.spend[done] = self.learning_usd()
                if done % settings.learn_every == 0 or last:
                    self.checkpoints.append(await learn_checkpoint(self, done))
            if progress and done % settings.window == 0:
                rate = done / (time.perf_counter() - started)
                print(f"  {model}: {done} requests ({rate:.1f}/s)", file=sys.stderr, flush=True)
        return self.served

    def learning_usd(self) -> float:
        """Everything learning has spent so far (shadow, audit and judge calls)."""
        store = self.gateway.learning.store
        table = store.evidence_table
        query = select(func.coalesce(func.sum(table.c.cost_usd), 0.0))
        with store.engine.connect() as conn:
            return float(conn.execute(query).scalar_one())

    def task_names(self) -> dict[str, str]:
        """The gateway's task name -> ours, from the ledger's task column."""
        self.gateway.ledger.flush()
        ours = {s.request_id: s.task for s in self.served}
        found: dict[str, Counter[str]] = defaultdict(Counter)
        for row in self.gateway.ledger.store.rows(kind="request"):
            if row.get("task") and row["request_id"] in ours:
                found[row["task"]][ours[row["request_id"]]] += 1
        return {name: counts.most_common(1)[0][0] for name, counts in found.items()}


async def learn_checkpoint(run: Run, requests: int) -> Checkpoint:
    """Drain the shadow work, learn once, let the policy book read the new versions."""
    learning = run.gateway.learning
    await learning.shadower.drain()
    started = time.perf_counter()
    outcomes = await learn_once(run)
    learn_s = time.perf_counter() - started
    await learning.policies.refresh()
    policies = {
        task: {
            "version": policy.version,
            "serve": policy.serve,
            "estimate": asdict(policy.estimate) if policy.estimate else None,
            "evidence_n": policy.evidence_n,
            "reason": policy.reason,
            "share_below_large": policy.share_below_large,
        }
        for task, policy in learning.policies.all().items()
    }
    return Checkpoint(requests, run.learning_usd(), learn_s, policies, outcomes)


async def learn_once(run: Run) -> list[dict[str, Any]]:
    """One pass of the learner (`smallfirst learn`), off the event loop as the gateway's own
    background job runs it."""
    from smallfirst.learning.learner import learn

    learning = run.gateway.learning
    outcomes = await asyncio.to_thread(learn, run.gateway.registry, learning.store, learning.config)
    return [
        {"task": o.task, "action": o.action, "message": o.message, "needed": o.needed}
        for o in outcomes
    ]


# -- the report -------------------------------------------------------------------------------
@dataclass(slots=True)
class Cell:
    """One task in one window (or overall): N, tier shares, accuracy with its interval."""

    n: int
    shares: dict[str, float]
    accuracy: float
    low: float
    high: float
    large_accuracy: float
    large_low: float
    large_high: float
    errors: int = 0


def cell(rows: Sequence[Served], baseline: Sequence[Served]) -> Cell:
    n = len(rows)
    tiers = Counter(r.tier for r in rows)
    right, large_right = sum(r.correct for r in rows), sum(b.correct for b in baseline)
    low, high = wilson(right, n) if n else (0.0, 0.0)
    large_low, large_high = wilson(large_right, n) if n else (0.0, 0.0)
    return Cell(
        n,
        {tier: tiers[tier] / n if n else 0.0 for tier in TIERS},
        right / n if n else 0.0,
        low,
        high,
        large_right / n if n else 0.0,
        large_low,
        large_high,
        tiers["error"],
    )


@dataclass(slots=True)
class Window:
    first: int
    last: int
    tasks: dict[str, Cell]
    served_usd: float
    learning_usd: float
    large_usd: float


def windows(
    served: Sequence[Served],
    baseline: Sequence[Served],
    learning_usd: dict[int, float],
    size: int = WINDOW,
) -> list[Window]:
    """`learning_usd`: requests so far -> learning spend so far, at each window's end."""
    out, spent = [], 0.0
    for lo in range(0, len(served), size):
        rows, base = served[lo : lo + size], baseline[lo : lo + size]
        hi = lo + len(rows)
        by_task: dict[str, tuple[list[Served], list[Served]]] = defaultdict(lambda: ([], []))
        for row, line in zip(rows, base, strict=True):
            by_task[row.task][0].append(row)
            by_task[row.task][1].append(line)
        now = learning_usd.get(hi, spent)
        out.append(
            Window(
                lo + 1,
                hi,
                {task: cell(*by_task[task]) for task in sorted(by_task)},
                sum(r.cost_usd for r in rows),
                now - spent,
                sum(b.cost_usd for b in base),
            )
        )
        spent = now
    return out


def print_windows(found: Sequence[Window]) -> None:
    head = (
        f"{'requests':<13}{'task':<13}{'N':>6}{'student':>9}{'small':>8}{'large':>8}"
        f"  {'accuracy [95% CI]':<24}{'always-large':<24}"
    )
    print(head)
    for window in found:
        span = f"{window.first}-{window.last}"
        for task, c in window.tasks.items():
            shares = "".join(f"{c.shares[t]:>8.1%}" for t in TIERS)
            errors = f"  ({c.errors} errors)" if c.errors else ""
            print(
                f"{span:<13}{task:<13}{c.n:>6} {shares}  {_interval(c.accuracy, c.low, c.high)}"
                f"{_interval(c.large_accuracy, c.large_low, c.large_high)}{errors}"
            )
            span = ""
        total = window.served_usd + window.learning_usd
        ratio = total / window.large_usd if window.large_usd else float("nan")
        print(
            f"{'':<13}{'$':<13}served {window.served_usd:.4f} + learning "
            f"{window.learning_usd:.4f} = {total:.4f} vs always-large {window.large_usd:.4f}"
            f" ({ratio:.2f}x)"
        )


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]".ljust(24)


@dataclass(slots=True)
class Verdict:
    task: str
    kind: str
    n: int
    below_large: float
    accuracy: float
    large_accuracy: float
    met: bool | None
    """None: too few requests after the first 2,000 to say."""
    note: str


def verdicts(
    specs: dict[str, TaskSpec],
    served: Sequence[Served],
    baseline: Sequence[Served],
    moved_down: frozenset[str] = frozenset(),
) -> list[Verdict]:
    """The issue's targets: a closed-output task, after its first 2,000 requests, serves at
    least 70% below large within 2 points of always-large; free text is never moved down
    (no request served below large, and no policy of the task serving below it:
    `moved_down`, the tasks that ever had one)."""
    out = []
    for task, spec in specs.items():
        pairs = [(s, b) for s, b in zip(served, baseline, strict=True) if s.task == task]
        if not pairs:
            continue
        if spec.kind == "text":
            rows = [s for s, _ in pairs]
            below = sum(s.tier != "large" for s in rows) / len(rows)
            c = cell(rows, [b for _, b in pairs])
            kept = below == 0 and task not in moved_down
            note = "never moved below large" if kept else "moved below large"
            out.append(
                Verdict(task, spec.kind, len(rows), below, c.accuracy, c.large_accuracy, kept, note)
            )
            continue
        late = pairs[CLOSED_AFTER:]
        if not late:
            note = f"only {len(pairs)} requests: the target needs > {CLOSED_AFTER}"
            out.append(Verdict(task, spec.kind, 0, 0.0, 0.0, 0.0, None, note))
            continue
        c = cell([s for s, _ in late], [b for _, b in late])
        below = 1.0 - c.shares["large"]
        gap = c.large_accuracy - c.accuracy
        met = below >= TARGET_SHARE_BELOW and gap <= TARGET_POINTS
        note = f"{below:.1%} below large (>= 70%), {gap * 100:+.1f} points vs always-large (<= 2)"
        out.append(Verdict(task, spec.kind, c.n, below, c.accuracy, c.large_accuracy, met, note))
    return out


def print_verdicts(found: Sequence[Verdict]) -> None:
    print(f"\ntargets (closed output: requests after each task's first {CLOSED_AFTER})")
    for v in found:
        status = {True: "MET", False: "NOT MET", None: "n/a"}[v.met]
        print(
            f"  {v.task:<13}{v.kind:<6}N {v.n:>5}  accuracy {v.accuracy:.3f} vs always-large "
            f"{v.large_accuracy:.3f}  {status}: {v.note}"
        )


def plot(found: Sequence[Window], path: Path) -> str:
    """The learning curve: share below large and accuracy per task, $ ratio, per window."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no PNG"
    ends = [w.last for w in found]
    tasks = sorted({t for w in found for t in w.tasks})
    figure, (shares, accuracy, dollars) = plt.subplots(3, 1, figsize=(8, 10), sharex=True)
    for i, task in enumerate(tasks):
        colour = f"C{i}"
        points = [(w.last, w.tasks[task]) for w in found if task in w.tasks]
        xs = [x for x, _ in points]
        shares.plot(xs, [1 - c.shares["large"] for _, c in points], "o-", color=colour, label=task)
        accuracy.plot(xs, [c.accuracy for _, c in points], "o-", color=colour, label=task)
        accuracy.fill_between(
            xs, [c.low for _, c in points], [c.high for _, c in points], color=colour, alpha=0.15
        )
        accuracy.plot(
            xs,
            [c.large_accuracy for _, c in points],
            "--",
            color=colour,
            label=f"{task}, always-large",
        )
    shares.axhline(TARGET_SHARE_BELOW, color="grey", linestyle=":", label="70% target")
    shares.set_ylabel("share served below large")
    shares.set_ylim(-0.02, 1.02)
    shares.legend(fontsize=8)
    accuracy.set_ylabel("accuracy vs gold (95% CI)")
    accuracy.legend(fontsize=7, ncol=2)
    ratio = [(w.served_usd + w.learning_usd) / w.large_usd if w.large_usd else 0 for w in found]
    dollars.plot(ends, ratio, "o-", color="black")
    dollars.axhline(1.0, color="grey", linestyle=":")
    dollars.set_ylabel("$ (served + learning) / always-large")
    dollars.set_xlabel("requests in the stream")
    size = found[0].last - found[0].first + 1 if found else WINDOW
    figure.suptitle(f"auto that learns: per {size:,} requests")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"learning curve: {path}"


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--qmsum", type=int, default=250, help="QMSum requests in the stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--learn-every", type=int, default=500, help="run the learner every N requests"
    )
    parser.add_argument("--window", type=int, default=WINDOW, help="requests per table row")
    parser.add_argument(
        "--drain-every",
        type=int,
        default=DRAIN_EVERY,
        help="wait for the shadow calls every N requests, so traffic arrives no faster than "
        "the small model answers them (the stream is far faster than the embedded model: "
        "undrained, shadow calls queue on its slots until the failover deadline fails them, "
        "or beyond 32 in flight are skipped)",
    )
    parser.add_argument("--small", choices=("embedded", "replay"), default="embedded")
    parser.add_argument(
        "--small-accuracy",
        type=float,
        default=0.6,
        help="accuracy of the replay small model (--small replay)",
    )
    parser.add_argument("--large-accuracy", type=float, default=0.95)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="embedded model threads")
    parser.add_argument("--budget", type=float, default=10.0, help="learning $ per day")
    parser.add_argument("--shadow-rate", type=float, default=None)
    parser.add_argument("--audit-rate", type=float, default=None)
    parser.add_argument("--min-evidence", type=int, default=None)
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--excerpt-chars", type=int, default=3000)
    parser.add_argument(
        "--explicit-task",
        action="store_true",
        help="name each request's task in metadata (default: the gateway "
        "names tasks from the repeating system prompt)",
    )
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks" / "learning_curve.png")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    specs, pools = load_tasks(args.excerpt_chars)
    counts = stream_counts(args.requests, args.qmsum, pools)
    stream = build_stream(pools, counts, args.seed)
    settings = Settings(
        small=args.small,
        small_accuracy=args.small_accuracy,
        large_accuracy=args.large_accuracy,
        learn_every=args.learn_every,
        drain_every=args.drain_every,
        window=args.window,
        concurrency=args.concurrency,
        threads=args.threads,
        budget_usd=args.budget,
        shadow_rate=args.shadow_rate,
        audit_rate=args.audit_rate,
        min_evidence=args.min_evidence,
        target=args.target,
        explicit_task=args.explicit_task,
        seed=args.seed,
    )
    register_judge(pools)
    print(
        f"stream: {len(stream)} requests ({', '.join(f'{t} {n}' for t, n in counts.items())}), "
        f"seed {args.seed}; small: {args.small}; large: replay at {args.large_accuracy}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "large").mkdir()
        (folder / "learn").mkdir()
        always = gateway_config(settings, folder / "large", pools, learn=False)
        async with Run(always, folder / "large", specs) as base:
            baseline = await base.replay(stream, LARGE, settings, progress=not args.quiet)
        learned = gateway_config(settings, folder / "learn", pools, learn=True)
        started = time.perf_counter()
        async with Run(learned, folder / "learn", specs, args.seed) as live:
            served = await live.replay(stream, "auto", settings, progress=not args.quiet)
            names = live.task_names()
            shadower = live.gateway.learning.shadower
            skipped, exhausted = shadower.skipped_busy, shadower.budget_exhausted
        seconds = time.perf_counter() - started
    found = windows(served, baseline, live.spend, settings.window)
    print_windows(found)
    moved = frozenset(
        names.get(task, task)
        for c in live.checkpoints
        for task, policy in c.policies.items()
        if policy["serve"] != "large"
    )
    targets = verdicts(specs, served, baseline, moved)
    print_verdicts(targets)
    total = sum(s.cost_usd for s in served)
    learning = max(live.spend.values(), default=0.0)
    large = sum(b.cost_usd for b in baseline)
    print(
        f"\n$ overall: served {total:.4f} + learning {learning:.4f} = {total + learning:.4f} vs "
        f"always-large {large:.4f} ({(total + learning) / large:.2f}x); {seconds:.0f} s"
    )
    if skipped or exhausted:
        print(f"shadow draws skipped (32 calls in flight): {skipped}; budget spent: {exhausted}")
    print(plot(found, args.png))
    summary = {
        "counts": counts,
        "settings": asdict(settings),
        "windows": [asdict(w) for w in found],
        "targets": [asdict(v) for v in targets],
        "checkpoints": [
            {**asdict(c), "policies": {names.get(t, t): p for t, p in c.policies.items()}}
            for c in live.checkpoints
        ],
        "served_usd": total,
        "learning_usd": learning,
        "always_large_usd": large,
        "seconds": seconds,
        "shadow_skipped_busy": skipped,
        "budget_exhausted": exhausted,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
