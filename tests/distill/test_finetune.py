"""`distill finetune` checks: every bad input is refused in seconds, before any weights load."""

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.config import Config, ModelConfig
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.finetune import FinetuneSettings, prepare_finetune
from smallfirst.distill.lora_pairs import bank_task, serving_prompt, training_pair
from smallfirst.errors import InvalidRequestError
from smallfirst.models.registry import Registry, register_backend
from smallfirst.tasks import Task
from smallfirst.tasks.spec import parse_spec
from smallfirst.types import CompletionRequest, Generation

from .conftest import SENTIMENT

runner = CliRunner()
SLOTS = {
    "name": "slots",
    "kind": "extract",
    "instructions": "",
    "input_name": "Text",
    "schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def make_bank(name: str, summary: dict, pairs: list[tuple[str, str]]) -> ExampleBank:
    bank = ExampleBank.open(name)
    bank.set_meta(task=summary)
    labelled = summary["kind"] == "classify"
    bank.add_many([(i, o, o if labelled else None) for i, o in pairs])
    return bank


def sentiment_pairs(n: int) -> list[tuple[str, str]]:
    return [(f"review number {i}", "positive" if i % 2 else "negative") for i in range(n)]


def test_a_bank_too_small_to_hold_out_a_slice_is_refused():
    make_bank("tiny", SENTIMENT, sentiment_pairs(3))
    with pytest.raises(InvalidRequestError, match="too few to hold out a validation slice"):
        prepare_finetune("tiny", FinetuneSettings())
    result = runner.invoke(app, ["distill", "finetune", "tiny"])
    assert result.exit_code == 1 and "label at least 4 inputs" in result.stderr
    assert "training" not in result.stderr


def test_an_answer_task_cannot_be_served_by_an_adapter():
    summary = {"name": "qa", "kind": "answer", "instructions": "", "input_name": "Question"}
    make_bank("qa", summary, [(f"q{i}", "a") for i in range(20)])
    with pytest.raises(InvalidRequestError, match="'answer' prompts carry retrieved passages"):
        prepare_finetune("qa", FinetuneSettings())


def test_a_base_that_is_not_local_is_refused(tmp_path: Path):
    make_bank("s", SENTIMENT, sentiment_pairs(20))
    with pytest.raises(InvalidRequestError, match="never downloads weights"):
        prepare_finetune("s", FinetuneSettings(base="google/gemma-3-270m"))
    with pytest.raises(InvalidRequestError, match="no such GGUF file"):
        prepare_finetune("s", FinetuneSettings(base=str(tmp_path / "none.gguf")))
    (tmp_path / "smallfirst.yaml").write_text(
        "models:\n"
        "  - {name: big, backend: openai, base_url: 'http://127.0.0.1:9/v1', tier: large}\n"
        "  - {name: gone, backend: llamacpp, path: missing.gguf}\n"
    )
    with pytest.raises(InvalidRequestError, match="weights on this machine"):
        prepare_finetune("s", FinetuneSettings(base="big"))
    with pytest.raises(InvalidRequestError, match=r"missing\.gguf does not exist"):
        prepare_finetune("s", FinetuneSettings(base="gone"))


def test_an_architecture_transformers_cannot_load_is_named(tmp_path: Path):
    import gguf

    path = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    make_bank("s", SENTIMENT, sentiment_pairs(20))
    with pytest.raises(InvalidRequestError, match="cannot load GGUF architecture 'rwkv6'"):
        prepare_finetune("s", FinetuneSettings(base=str(path)))


def test_too_little_memory_is_refused_with_the_estimate(embedded_model_path: str):
    make_bank("s", SENTIMENT, sentiment_pairs(20))
    with pytest.raises(InvalidRequestError, match=r"needs about .* GiB .* lower --batch-size"):
        prepare_finetune("s", FinetuneSettings(base=embedded_model_path), memory=2**20)
    plan = prepare_finetune("s", FinetuneSettings(base=embedded_model_path), memory=2**40)
    assert (len(plan.train), len(plan.valid)) == (18, 2)
    assert plan.base.architecture == "gemma3" and plan.base.parameters > 2e8
    assert plan.train[0][1][-1] == 1  # every answer ends with Gemma's end-of-sequence


def test_a_task_spec_must_be_the_one_the_bank_was_labelled_for():
    bank = make_bank("s", SENTIMENT, sentiment_pairs(4))
    described = parse_spec({**SENTIMENT, "labels": {"positive": "good", "negative": "bad"}})
    assert "- positive: good" in serving_prompt(bank_task(bank, described), "x")
    other = parse_spec({**SENTIMENT, "labels": ["yes", "no"]})
    with pytest.raises(InvalidRequestError, match="not the one bank"):
        bank_task(bank, other)


class PromptRecorder:
    """A backend that keeps every completion prompt and answers with a fixed text."""

    prompts: ClassVar[list[str]] = []

    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name
        self.answer = config.options["answer"]

    async def complete(self, request: CompletionRequest) -> Generation:
        PromptRecorder.prompts.append(request.prompt)
        return Generation(text=self.answer, model=self.name)

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(
    ("summary", "output", "answer"),
    [
        (SENTIMENT, "negative", " negative"),
        (SLOTS, json.dumps({"city": "Oslo"}), '{"city": "Oslo"}'),
    ],
)
def test_pairs_are_in_the_prompt_a_served_task_sends(summary, output, answer):
    register_backend("record-prompts", PromptRecorder)
    bank = make_bank("b", summary, [("weather in Oslo please", output)] * 1)
    task = bank_task(bank)
    pair = training_pair(task, bank.examples()[0])
    assert pair.answer == answer
    config = ModelConfig(
        name="rec", backend="record-prompts", prompt_style="completion", options={"answer": answer}
    )
    PromptRecorder.prompts.clear()
    served = Task(task.spec).run_sync(
        "weather in Oslo please", registry=Registry(Config(models=[config]))
    )
    assert PromptRecorder.prompts == [pair.prompt]
    assert served.raw == answer


def test_models_shows_base_adapter_and_memory(tmp_path: Path, embedded_model_path: str):
    (tmp_path / "zoo-lora.gguf").write_bytes(b"\0" * 2**20)
    (tmp_path / "smallfirst.yaml").write_text(
        "models:\n"
        "  - {name: gemma-3-270m, backend: llamacpp}\n"
        "  - {name: gemma-zoo, backend: llamacpp, adapter: zoo-lora.gguf}\n"
        "  - {name: gone, backend: llamacpp, adapter: nowhere.gguf}\n"
    )
    result = runner.invoke(app, ["models"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    base_mib = Path(embedded_model_path).stat().st_size / 2**20
    assert f"gemma-3-270m-q4_k_m.gguf, {base_mib:.0f} MiB" in rows["gemma-3-270m"]
    assert f"+ adapter zoo-lora.gguf, {base_mib + 1:.0f} MiB" in rows["gemma-zoo"]
    assert "nowhere.gguf (missing)" in rows["gone"]
