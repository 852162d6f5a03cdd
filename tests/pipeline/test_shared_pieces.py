"""Steps over the same pieces take turns: one leads each piece, the others follow once it is
done, and only `width` pieces are in flight. On the embedded model that reads each piece once."""

from __future__ import annotations

import asyncio

from smallfirst.config import Config, ModelConfig, parse_config
from smallfirst.models.registry import Registry
from smallfirst.pipeline import Pipeline
from smallfirst.pipeline.shared_pieces import SharedPieces, shared_pieces
from smallfirst.pipeline.spec import PipelineSpec


async def test_followers_start_after_the_leader_and_few_pieces_are_in_flight():
    gate = SharedPieces(steps=3, width=2)
    events: list[tuple[str, int]] = []
    finished = dict.fromkeys(range(5), 0)
    widest = 0

    async def call(piece: int) -> None:
        nonlocal widest
        async with gate.turn(piece):
            events.append(("start", piece))
            started = {p for kind, p in events if kind == "start"}
            widest = max(widest, sum(1 for p in started if finished[p] < 3))
            await asyncio.sleep(0.01)
            events.append(("end", piece))
            finished[piece] += 1

    await asyncio.gather(*(call(piece) for _step in "abc" for piece in range(5)))
    for piece in range(5):
        starts = [i for i, e in enumerate(events) if e == ("start", piece)]
        first_end = events.index(("end", piece))
        assert len(starts) == 3 and starts[1] > first_end  # the others waited for the first
    assert widest == 2


async def test_a_step_that_withdraws_frees_its_pieces():
    gate = SharedPieces(steps=2, width=1)

    async def call(piece: int) -> int:
        async with gate.turn(piece):
            await asyncio.sleep(0)
        return piece

    first = asyncio.ensure_future(call(0))
    await asyncio.sleep(0.01)
    gate.withdraw()  # the other step was skipped: piece 0 needs no follower
    assert await asyncio.wait_for(asyncio.gather(first, call(1)), 2) == [0, 1]


def _steps(layout: str, model: str = "gemma") -> PipelineSpec:
    task = {"kind": "summarize", "max_words": 10, "layout": layout}
    return PipelineSpec.model_validate(
        {
            "name": "p",
            "steps": [
                {"name": "one", "model": model, "chunk_chars": 400, "task": task},
                {
                    "name": "two",
                    "model": model,
                    "chunk_chars": 400,
                    "task": {**task, "focus": "dates"},
                },
            ],
        }
    )


def test_only_input_first_steps_on_an_embedded_model_share_pieces():
    registry = Registry(
        Config(
            models=[
                ModelConfig(name="gemma", backend="llamacpp"),
                ModelConfig(name="api", backend="openai", base_url="http://127.0.0.1:9/v1"),
            ]
        )
    )
    for spec, shared in [
        (_steps("input_first"), True),
        (_steps("instruction_first"), False),
        (_steps("input_first", model="api"), False),
    ]:
        pipeline = Pipeline(spec)
        gates = shared_pieces(pipeline.levels[0], pipeline.tasks, registry)
        assert (set(gates) == {"one", "two"}) is shared
        if shared:
            assert gates["one"] is gates["two"]


MEETING = "\n".join(
    f"Speaker {i % 3}: we talked about the budget for item {i} and agreed on the date."
    for i in range(24)
)


async def _read_tokens(layout: str) -> tuple[int, list[str]]:
    registry = Registry(
        parse_config("models:\n  - {name: gemma, backend: llamacpp, tier: small, slots: 4}\n")
    )
    gemma = registry.raw_provider("gemma")
    try:
        result = await Pipeline(_steps(layout)).run(MEETING, registry=registry)
        engine = gemma._engine  # type: ignore[attr-defined]
        return engine.evaluated, [result.steps[n].status for n in ("one", "two")]
    finally:
        await registry.aclose()


async def test_steps_over_the_same_pieces_read_each_piece_once_on_the_embedded_model(
    embedded_model_path,
):
    separate, statuses = await _read_tokens("instruction_first")
    shared, shared_statuses = await _read_tokens("input_first")
    assert statuses == shared_statuses == ["ok", "ok"]
    # 5 pieces of ~100 tokens, two steps: read once each instead of twice
    assert shared < 0.75 * separate
