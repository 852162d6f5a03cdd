"""A resume on an input that changed since the journal was started: refused, or matched by content.

The bug: the journal matched results by row position only, so prepending a line and rerunning
the same command left the new line out, wrote the last item twice and billed it twice.
"""

import json

import pytest
from typer.testing import CliRunner

from smallfirst.batch import BatchOptions, WorkSpec, run_batch
from smallfirst.batch.journal import InputChangedError
from smallfirst.cli import app
from smallfirst.cli.batch_cmd import INPUT_CHANGED_EXIT
from tests.batch.conftest import read_jsonl, write_jsonl

PER_ITEM = (10 * 1 + 2 * 2) / 1e6
"""What the scripted upstream bills for one item: 10 prompt, 2 completion tokens on model `m`."""

runner = CliRunner()


def said(result) -> str:
    """The command's output with the console's line wrapping undone."""
    return " ".join(result.output.split())


def items(count: int, start: int = 0) -> list[dict]:
    return [{"id": f"r{i}", "text": f"item {i}"} for i in range(start, start + count)]


def batch_cli(config, source, out, *flags: str):
    return runner.invoke(
        app, ["--config", str(config), "batch", str(source), "--out", str(out), "-j", "8", *flags]
    )


def prepend(path, row: dict) -> None:
    path.write_text(json.dumps(row) + "\n" + path.read_text())


def test_prepending_a_line_then_resuming_is_refused_naming_line_1(upstream_config, tmp_path):
    upstream, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", items(60))
    out = tmp_path / "out.jsonl"
    first = batch_cli(config, source, out)
    assert first.exit_code == 0, first.output
    before = out.read_text()
    prepend(source, {"id": "new", "text": "a new first line"})
    again = batch_cli(config, source, out)
    assert again.exit_code == INPUT_CHANGED_EXIT
    assert "line 1 was inserted" in said(again) and "--allow-changed-input" in said(again)
    assert out.read_text() == before  # nothing written, nothing sent
    assert len(upstream.received) == 60


def test_allow_changed_input_gives_every_line_once_billed_once(upstream_config, tmp_path):
    upstream, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", items(60))
    out = tmp_path / "out.jsonl"
    assert batch_cli(config, source, out).exit_code == 0
    prepend(source, {"id": "new", "text": "a new first line"})
    assert batch_cli(config, source, out).exit_code == INPUT_CHANGED_EXIT
    result = batch_cli(config, source, out, "--allow-changed-input")
    assert result.exit_code == 0, result.output
    assert "1 done" in said(result) and "60 finished in earlier runs" in said(result)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["new"] + [f"r{i}" for i in range(60)]
    assert len(upstream.received) == 61  # only the new line was sent
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(61 * PER_ITEM)
    sent = [m["messages"][-1]["content"] for m in upstream.received[60:]]
    assert sent == ["a new first line"]
    # The rebased journal now matches the file: a plain rerun is a no-op, not a refusal.
    rerun = batch_cli(config, source, out)
    assert rerun.exit_code == 0 and "0 done" in said(rerun)
    assert len(upstream.received) == 61


async def test_changed_removed_and_duplicated_lines_by_content(upstream_config, tmp_path):
    """Positional ids follow their line; a removed line's result is retired but still costs."""
    upstream, config = upstream_config
    texts = ["alpha", "beta", "gamma", "delta"]
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "out.jsonl"
    spec = WorkSpec(model="m", config=str(config))
    await run_batch(spec.build(), BatchOptions(source, out))
    # beta changed, gamma removed, alpha now twice (the copy is a new item), one line added.
    changed = ["alpha", "BETA", "delta", "alpha", "epsilon"]
    write_jsonl(source, [{"text": t} for t in changed])
    with pytest.raises(InputChangedError, match="line 2 changed"):
        await run_batch(spec.build(), BatchOptions(source, out))
    summary = await run_batch(spec.build(), BatchOptions(source, out, allow_changed_input=True))
    assert summary.resumed == 2 and summary.done == 3 and summary.retired == 2
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["0", "1", "2", "3", "4"]  # row numbers of the new file
    prompts = [m["messages"][-1]["content"] for m in upstream.received[4:]]
    assert sorted(prompts) == ["BETA", "alpha", "epsilon"]
    assert len(upstream.received) == 7
    # Spend is what was really billed: 4 first-run items (2 of them retired) + 3 new.
    assert summary.cost_usd == pytest.approx(7 * PER_ITEM)


async def test_a_changed_csv_row_is_named_by_row(upstream_config, tmp_path):
    _, config = upstream_config
    source = tmp_path / "in.csv"
    source.write_text("id,text\na,first\nb,second\n")
    out = tmp_path / "out.jsonl"
    spec = WorkSpec(model="m", config=str(config))
    await run_batch(spec.build(), BatchOptions(source, out))
    source.write_text("id,text\na,first\nb,second edited\n")
    with pytest.raises(InputChangedError, match="row 3 changed"):
        await run_batch(spec.build(), BatchOptions(source, out))


async def test_appending_lines_is_refused_and_then_only_the_new_ones_run(upstream_config, tmp_path):
    upstream, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", items(3))
    out = tmp_path / "out.jsonl"
    spec = WorkSpec(model="m", config=str(config))
    await run_batch(spec.build(), BatchOptions(source, out))
    write_jsonl(source, items(5))
    with pytest.raises(InputChangedError, match="line 4 was added after the 3 recorded lines"):
        await run_batch(spec.build(), BatchOptions(source, out))
    summary = await run_batch(spec.build(), BatchOptions(source, out, allow_changed_input=True))
    assert summary.done == 2 and summary.retired == 0 and len(upstream.received) == 5


def test_the_ray_engine_refuses_a_changed_input_too(upstream_config, tmp_path):
    """The check runs on the driver before Ray starts, so this needs no cluster."""
    pytest.importorskip("ray")
    from smallfirst.batch.ray_engine import run_batch_ray

    upstream, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", items(3))
    out = tmp_path / "out.jsonl"
    assert batch_cli(config, source, out).exit_code == 0
    prepend(source, {"id": "new", "text": "a new first line"})
    spec = WorkSpec(model="m", config=str(config))
    with pytest.raises(InputChangedError, match="line 1 was inserted"):
        run_batch_ray(spec, BatchOptions(source, out))
    assert len(upstream.received) == 3
