"""Bad lines are rejected for good (journaled, not retried); only transient failures are retried."""

from typing import ClassVar

import pytest
from typer.testing import CliRunner

from smallfirst.batch import BatchOptions, WorkSpec, run_batch
from smallfirst.batch.processors import Processed
from smallfirst.cli import app
from smallfirst.testing import Script
from smallfirst.types import Usage
from tests.batch.conftest import read_jsonl, write_jsonl

runner = CliRunner()


def said(result) -> str:
    """The command's output with the console's line wrapping undone."""
    return " ".join(result.output.split())


UTF16_LINE = b"\xfe\xff\x00[\x00]\x00"
"""`[]` in UTF-16 with a byte-order mark: not UTF-8, so not a JSONL line."""


def batch_cli(config, source, out):
    return runner.invoke(app, ["--config", str(config), "batch", str(source), "--out", str(out)])


def openai_line(custom_id: str, **body) -> dict:
    messages = [{"role": "user", "content": f"hi {custom_id}"}]
    return {"custom_id": custom_id, "body": {"messages": messages, **body}}


def test_a_utf16_line_is_rejected_and_later_lines_are_processed(upstream_config, tmp_path):
    upstream, config = upstream_config
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": "a", "text": "first"}\n' + UTF16_LINE + b'\n{"id": "b", "text": "last"}\n'
    )
    out = tmp_path / "out.jsonl"
    first = batch_cli(config, source, out)
    assert first.exit_code == 0, first.output
    assert "2 done, 1 rejected" in said(first)
    assert [r["id"] for r in read_jsonl(out)] == ["a", "b"]
    (reject,) = read_jsonl(out.with_name("out.rejects.jsonl"))
    assert reject["reason"].startswith("line 2: not UTF-8 text")
    again = batch_cli(config, source, out)  # the rerun neither crashes nor redoes anything
    assert again.exit_code == 0, again.output
    assert "0 done, 0 rejected" in said(again) and "3 finished in earlier runs" in said(again)
    assert len(upstream.received) == 2


def test_a_line_that_is_not_utf8_in_a_csv_is_rejected(upstream_config, tmp_path):
    _, config = upstream_config
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,text\na,fine\nb,caf\xe9\nc,also fine\n")
    out = tmp_path / "out.jsonl"
    result = batch_cli(config, source, out)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(out)] == ["a", "c"]
    (reject,) = read_jsonl(out.with_name("out.rejects.jsonl"))
    assert reject["reason"] == "row 3: not UTF-8 text"


def test_bad_max_tokens_is_rejected_once_and_not_retried(upstream_config, tmp_path):
    upstream, config = upstream_config
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            openai_line("ok"),
            openai_line("abc", max_tokens="abc"),
            openai_line("zero", max_tokens=0),
            openai_line("hot", temperature="hot"),
            {"id": "text-zero", "text": "hi", "max_tokens": 0},
            {"id": "text-hot", "text": "hi", "temperature": 3},
        ],
    )
    out = tmp_path / "out.jsonl"
    first = batch_cli(config, source, out)
    assert first.exit_code == 0, first.output  # nothing failed, so nothing to retry
    assert "1 done, 5 rejected" in said(first) and "0 failed" in said(first)
    rejects = {r["id"]: r["reason"] for r in read_jsonl(out.with_name("out.rejects.jsonl"))}
    # A chat body is validated as the gateway validates one; a text item by its own checks.
    assert rejects["abc"] == "max_tokens: Input should be a valid integer"
    assert rejects["zero"] == "max_tokens: Input should be greater than or equal to 1"
    assert rejects["hot"] == "temperature: Input should be a valid number"
    assert rejects["text-zero"] == "max_tokens must be a positive integer, not 0"
    assert rejects["text-hot"] == "temperature must be a number from 0 to 2, not 3"
    again = batch_cli(config, source, out)
    assert again.exit_code == 0 and "0 done, 0 rejected" in said(again)
    assert len(upstream.received) == 1


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_an_upstream_4xx_is_a_permanent_rejection(upstream_config, tmp_path, status):
    upstream, config = upstream_config
    upstream.enqueue(Script("error", status=status))
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]
    )
    out = tmp_path / "out.jsonl"
    spec = WorkSpec(model="m", config=str(config))
    options = BatchOptions(source, out, concurrency=1)
    first = await run_batch(spec.build(), options)
    assert first.rejected == 1 and first.done == 1 and first.failed == 0
    (reject,) = read_jsonl(options.rejects_path)
    assert reject["id"] == "a" and f"answered {status}" in reject["reason"]
    second = await run_batch(spec.build(), options)
    assert second.done == 0 and second.rejected == 0 and len(upstream.received) == 2


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_upstream_errors_are_retried_by_a_rerun(upstream_config, tmp_path, status):
    upstream, config = upstream_config
    upstream.enqueue(*[Script("error", status=status)] * 4)  # the run itself tries 3 times
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "x"}])
    out = tmp_path / "out.jsonl"
    spec = WorkSpec(model="m", config=str(config))
    first = await run_batch(spec.build(), BatchOptions(source, out))
    assert first.failed == 1 and first.rejected == 0
    second = await run_batch(spec.build(), BatchOptions(source, out))
    assert second.done == 1 and [r["id"] for r in read_jsonl(out)] == ["a"]


class CrashingOnce:
    """A processor with a bug that one item triggers (not a `SmallfirstError`)."""

    job: ClassVar[dict] = {"kind": "crashing"}

    async def process(self, data):
        if data["text"] == "boom":
            raise KeyError("missing")
        return Processed({"output": data["text"]}, Usage(1, 1), 0.0, "echo")


async def test_an_item_that_crashes_the_processor_fails_and_the_run_carries_on(tmp_path):
    rows = [{"id": str(i), "text": "boom" if i == 1 else f"t{i}"} for i in range(12)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    summary = await run_batch(CrashingOnce(), BatchOptions(source, out, concurrency=1))
    assert summary.done == 11 and summary.failed == 1
    assert summary.failures == ["1: KeyError: 'missing'"]
