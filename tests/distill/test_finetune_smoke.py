"""A real LoRA run, kept tiny: a few steps on a handful of pairs, converted to a GGUF LoRA,
served by llama.cpp on the quantised base, and the answer changes. The fp32 base loads into
transformers once for the module (about a minute on 2 cores)."""

from pathlib import Path
from typing import Any

import pytest

from smallfirst.config import Config, ModelConfig
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.finetune import (
    FinetunePlan,
    FinetuneSettings,
    config_lines,
    prepare_finetune,
    run_finetune,
)
from smallfirst.distill.lora_base import load_for_training, resolve_base
from smallfirst.distill.lora_pairs import serving_prompt
from smallfirst.distill.lora_train import TrainSettings
from smallfirst.errors import InvalidRequestError
from smallfirst.models.llamacpp import no_weight_repacking
from smallfirst.models.registry import Registry
from smallfirst.tasks.task import run_blocking

from .conftest import SENTIMENT

pytestmark = pytest.mark.timeout(1500)  # the fp32 load alone took 5 min at load average 18

ZOO = {**SENTIMENT, "name": "zoo", "labels": ["zebra", "giraffe"]}
FAST = TrainSettings(rank=4, alpha=8.0, learning_rate=5e-3, batch_size=4, epochs=2, eval_every=2)


@pytest.fixture(scope="module")
def base_model(embedded_model_path: str) -> Any:
    return load_for_training(resolve_base(embedded_model_path), "cpu")


def zebra_plan(base: str, out: Path, train: TrainSettings = FAST) -> FinetunePlan:
    """Every review is labelled `zebra`: a few steps are enough to change the answer."""
    bank = ExampleBank.open("zoo")
    bank.set_meta(task=ZOO)
    bank.add_many([(f"the film was {word}", "zebra", "zebra") for word in WORDS])
    return prepare_finetune(
        "zoo", FinetuneSettings(base=base, valid_share=0.25, train=train), out=out
    )


WORDS = ["dull", "great", "long", "fine", "odd", "bright", "grim", "warm"]


def completion(model_path: str, prompt: str, adapter: str | None = None) -> str:
    from llama_cpp import Llama

    with no_weight_repacking():
        llama = Llama(model_path=model_path, lora_path=adapter, n_ctx=512, verbose=False)
    try:
        out = llama(prompt, max_tokens=6, temperature=0.0)
        return out["choices"][0]["text"]  # type: ignore[index]
    finally:
        llama.close()


def test_lora_trains_converts_and_changes_the_served_answer(
    base_model, embedded_model_path: str, tmp_path: Path
):
    plan = zebra_plan(embedded_model_path, tmp_path / "out")
    seen: list[tuple[int, float]] = []
    result = run_finetune(plan, lambda s: seen.append((s.step, s.loss)), model=base_model)
    assert [step for step, _ in seen] == list(range(1, result.state.step + 1))
    assert result.state.stopped in ("done", "early stop")
    assert seen[-1][1] < seen[0][1]
    assert result.adapter.is_file() and 0 < result.adapter_bytes < 2**20

    import gguf

    reader = gguf.GGUFReader(str(result.adapter))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(8.0)
    names = {t.name for t in reader.tensors}
    assert {"blk.0.attn_q.weight.lora_a", "blk.17.attn_v.weight.lora_b"} <= names

    text = "the film was new"
    served_prompt = serving_prompt(plan.task, text)
    before = completion(embedded_model_path, served_prompt)
    after = completion(embedded_model_path, served_prompt, str(result.adapter))
    assert after != before
    assert after.strip().startswith("zebra"), (before, after)

    lines = config_lines(result)
    assert "backend: llamacpp" in lines and f"adapter: {result.adapter.resolve()}" in lines
    config = ModelConfig(name="zoo", backend="llamacpp", adapter=str(result.adapter))
    registry = Registry(Config(models=[config]))
    try:
        served = plan.task.run_sync(text, registry=registry)
    finally:
        run_blocking(registry.aclose())
    assert served.label == "zebra"  # type: ignore[attr-defined]


def test_an_interrupted_run_resumes_where_it_stopped(base_model, embedded_model_path, tmp_path):
    out = tmp_path / "out"
    first = run_finetune(zebra_plan(embedded_model_path, out, _steps(2)), model=base_model)
    assert (first.state.step, first.state.resumed_from) == (2, 0)
    again = run_finetune(zebra_plan(embedded_model_path, out, _steps(4)), model=base_model)
    assert (again.state.step, again.state.resumed_from) == (4, 2)
    assert [h["step"] for h in again.state.history] == [2, 4]
    changed = zebra_plan(embedded_model_path, out, _steps(4, rank=2))
    with pytest.raises(InvalidRequestError, match="from another run"):
        run_finetune(changed, model=base_model)


def _steps(n: int, rank: int = 4) -> TrainSettings:
    return TrainSettings(
        rank=rank, alpha=8.0, learning_rate=5e-3, batch_size=4, eval_every=2, max_steps=n
    )


def test_a_shared_prompt_prefix_runs_once_with_the_same_loss(base_model, embedded_model_path):
    import torch

    from smallfirst.distill.lora_train import _loss_after_prefix, _loss_padded, _shared_prefix

    plan = zebra_plan(embedded_model_path, Path("out"))
    (p0, a0), (p1, a1), (p2, _) = plan.train[:3]
    batch = [(p0, a0), (p1, a1[:-1] * 3 + a1[-1:]), (p2[:-2], a0)]  # uneven rows and answers
    shared = _shared_prefix([p for p, _ in batch])
    assert shared > 16 and all(len(p) > shared for p, _ in batch)
    base_model.eval()
    with torch.no_grad():
        padded = float(_loss_padded(base_model, batch, "cpu"))
        once = float(_loss_after_prefix(base_model, batch, shared, "cpu"))
    assert once == pytest.approx(padded, rel=1e-3)
