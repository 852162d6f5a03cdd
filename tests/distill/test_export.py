import json
from pathlib import Path

import pytest

from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.export import export_bank
from smallfirst.errors import InvalidRequestError

from .conftest import HashEmbedder


@pytest.fixture
def bank(sentiment_task) -> ExampleBank:
    bank = ExampleBank.open("sent", HashEmbedder())
    bank.set_meta(task=sentiment_task)
    for i in range(10):
        label = "positive" if i % 2 else "negative"
        bank.add(f"text {i} ünïcode", label, label=label)
    return bank


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_openai_chat_format_line_by_line(bank, tmp_path):
    out = tmp_path / "train.jsonl"
    written = export_bank(bank, out, "openai", valid_share=0.2)
    assert written == {str(out): 8, str(tmp_path / "train.valid.jsonl"): 2}
    records = read_lines(out) + read_lines(tmp_path / "train.valid.jsonl")
    assert len(records) == 10
    inputs = set()
    for record in records:
        assert set(record) == {"messages"}
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in record["messages"])
        assert "positive, negative" in record["messages"][0]["content"]
        assert record["messages"][2]["content"] in {"positive", "negative"}
        inputs.add(record["messages"][1]["content"])
    assert len(inputs) == 10 and "Text: text 3 ünïcode" in inputs


def test_prompt_completion_format_line_by_line(bank, tmp_path):
    out = tmp_path / "pc.jsonl"
    assert export_bank(bank, out, "prompt-completion") == {str(out): 10}
    for record in read_lines(out):
        assert set(record) == {"prompt", "completion"}
        assert record["prompt"].endswith("\nAnswer:")
        assert record["completion"] in {" positive", " negative"}


def test_export_errors(bank, tmp_path):
    with pytest.raises(InvalidRequestError, match="unknown export format"):
        export_bank(bank, tmp_path / "x.jsonl", "csv")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="valid share"):
        export_bank(bank, tmp_path / "x.jsonl", valid_share=1.0)
    empty = ExampleBank.open("empty", HashEmbedder())
    with pytest.raises(InvalidRequestError, match="no task description"):
        export_bank(empty, tmp_path / "x.jsonl")


def test_examples_format_feeds_a_task_spec(bank, tmp_path):
    from smallfirst.tasks import Task

    out = tmp_path / "examples.jsonl"
    export_bank(bank, out, "examples")
    records = read_lines(out)
    assert len(records) == 10 and all(set(r) == {"input", "output"} for r in records)
    spec = tmp_path / "task.yaml"
    spec.write_text(
        "kind: classify\nlabels: [positive, negative]\n"
        f"examples: {out.name}\nfew_shot: {{mode: knn, k: 2}}\n"
    )
    assert len(Task.from_yaml(spec).bank) == 10


def test_extract_outputs_export_as_mappings(tmp_path):
    bank = ExampleBank.open("fields", HashEmbedder())
    bank.set_meta(task={"name": "f", "kind": "extract", "schema": {"type": "object"}})
    bank.add("Paris in May", '{"city": "Paris"}')
    export_bank(bank, tmp_path / "x.jsonl", "examples")
    assert read_lines(tmp_path / "x.jsonl") == [
        {"input": "Paris in May", "output": {"city": "Paris"}}
    ]
