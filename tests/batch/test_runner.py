import pytest

from smallfirst.batch import BatchOptions, WorkSpec, run_batch
from smallfirst.config import load_config
from smallfirst.errors import InvalidRequestError
from smallfirst.models.registry import Registry
from smallfirst.testing import Script
from tests.batch.conftest import read_jsonl, write_jsonl

ITEMS = [{"id": f"r{i}", "text": f"review {i}"} for i in range(10)]


def processor(config, **spec):
    registry = Registry(load_config(config))
    return WorkSpec(model=spec.pop("model", "m"), config=str(config), **spec).build(registry)


async def test_jsonl_in_jsonl_out_with_cost(upstream_config, tmp_path):
    upstream, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS)
    out = tmp_path / "out.jsonl"
    summary = await run_batch(processor(config), BatchOptions(source, out, concurrency=3))
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(10)]  # input order
    assert all(r["output"] == "positive" and r["model"] == "m" for r in rows)
    assert summary.done == 10 and summary.rejected == 0 and len(upstream.received) == 10
    assert summary.cost_usd == pytest.approx(10 * (10 * 1 + 2 * 2) / 1e6)


async def test_bad_rows_go_to_rejects_and_the_run_carries_on(upstream_config, tmp_path):
    _, config = upstream_config
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "ok1", "text": "fine"},
            "{broken json",
            {"id": "empty", "other": 1},
            {"id": "long", "text": "x" * 500},
            [1, 2],
            {"id": "ok2", "text": "fine too"},
        ],
    )
    out = tmp_path / "out.jsonl"
    options = BatchOptions(source, out, max_input_chars=100)
    summary = await run_batch(processor(config), options)
    assert [r["id"] for r in read_jsonl(out)] == ["ok1", "ok2"]
    rejects = {r["id"]: r["reason"] for r in read_jsonl(options.rejects_path)}
    assert summary.rejected == 4 and len(rejects) == 4
    assert "line 2: not valid JSON" in rejects["1"]
    assert "no input text" in rejects["empty"]
    assert "over the limit of 100" in rejects["long"]
    assert "not a JSON object" in rejects["4"]


async def test_csv_and_parquet_round_trip(upstream_config, tmp_path):
    _, config = upstream_config
    source = tmp_path / "in.csv"
    source.write_text("id,text\na,first\nb,second\n")
    out = tmp_path / "out.parquet"
    await run_batch(processor(config), BatchOptions(source, out))
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert [(r["id"], r["output"]) for r in table] == [("a", "positive"), ("b", "positive")]
    import pyarrow as pa

    parquet_in = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "p", "text": "from parquet"}]), parquet_in)
    csv_out = tmp_path / "out.csv"
    await run_batch(processor(config), BatchOptions(parquet_in, csv_out))
    header, row = csv_out.read_text().splitlines()
    assert header.startswith("id,output") and row.startswith("p,positive")


async def test_openai_batch_format_both_ways(upstream_config, tmp_path):
    upstream, config = upstream_config
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": f"hi {i}"}],
            },
        }
        for i in range(3)
    ]
    source = write_jsonl(tmp_path / "batch.jsonl", lines)
    out = tmp_path / "results.jsonl"
    await run_batch(processor(config), BatchOptions(source, out))
    rows = read_jsonl(out)
    assert [r["custom_id"] for r in rows] == ["req-0", "req-1", "req-2"]
    ids = {r["id"] for r in rows}  # from the line's content: a resume may move a line
    assert len(ids) == 3 and all(i.startswith("batch_req_") for i in ids)
    body = rows[0]["response"]["body"]
    assert rows[0]["response"]["status_code"] == 200 and rows[0]["error"] is None
    assert body["choices"][0]["message"]["content"] == "positive"
    assert body["usage"]["completion_tokens"] == 2
    sent = sorted(r["messages"][0]["content"] for r in upstream.received)
    assert sent == ["hi 0", "hi 1", "hi 2"]  # sent concurrently: any order
    assert all(r["max_tokens"] == 5 for r in upstream.received)


async def test_dollar_cap_stops_and_a_rerun_finishes(upstream_config, tmp_path):
    upstream, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS)
    out = tmp_path / "out.jsonl"
    per_item = (10 * 1 + 2 * 2) / 1e6
    first = await run_batch(
        processor(config), BatchOptions(source, out, concurrency=1, max_usd=per_item * 3.5)
    )
    assert first.stopped and 4 <= first.done < 10
    assert len(read_jsonl(out)) == first.done
    second = await run_batch(processor(config), BatchOptions(source, out, concurrency=2))
    assert second.resumed == first.done and second.done == 10 - first.done
    assert [r["id"] for r in read_jsonl(out)] == [f"r{i}" for i in range(10)]
    assert len(upstream.received) == 10  # nothing done twice


async def test_upstream_failures_are_retried_by_a_rerun(upstream_config, tmp_path):
    upstream, config = upstream_config
    config.write_text(config.read_text() + "failover: {retries: 0}\n")  # failures outlast it
    upstream.enqueue(Script("error", status=500), Script("error", status=503))
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS[:4])
    out = tmp_path / "out.jsonl"
    first = await run_batch(processor(config), BatchOptions(source, out, concurrency=1))
    assert first.failed == 2 and first.done == 2 and "scripted 500" in first.failures[0]
    second = await run_batch(processor(config), BatchOptions(source, out))
    assert second.done == 2 and second.failed == 0
    assert [r["id"] for r in read_jsonl(out)] == ["r0", "r1", "r2", "r3"]


async def test_a_different_job_on_the_same_output_is_refused(upstream_config, tmp_path):
    _, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS[:2])
    out = tmp_path / "out.jsonl"
    await run_batch(processor(config), BatchOptions(source, out))
    with pytest.raises(InvalidRequestError, match="different job"):
        await run_batch(processor(config, max_tokens=9), BatchOptions(source, out))
    summary = await run_batch(
        processor(config, max_tokens=9), BatchOptions(source, out, restart=True)
    )
    assert summary.done == 2 and summary.resumed == 0


async def test_task_mode_returns_typed_fields(upstream_config, tmp_path):
    _, config = upstream_config
    task = tmp_path / "sentiment.yaml"
    task.write_text("kind: classify\nname: sentiment\nlabels: [negative, neutral, positive]\n")
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS[:3])
    out = tmp_path / "out.jsonl"
    summary = await run_batch(
        processor(config, model=None, task=str(task)), BatchOptions(source, out)
    )
    rows = read_jsonl(out)
    assert summary.done == 3 and all(r["label"] == "positive" for r in rows)


def test_unknown_format_and_missing_input(tmp_path):
    with pytest.raises(InvalidRequestError, match="does not exist"):
        BatchOptions(tmp_path / "missing.jsonl", tmp_path / "o.jsonl")
    text_file = tmp_path / "in.txt"
    text_file.write_text("hello")
    with pytest.raises(InvalidRequestError, match="unknown file type"):
        BatchOptions(text_file, tmp_path / "o.jsonl")
    with pytest.raises(InvalidRequestError, match="only one of"):
        WorkSpec(task="t.yaml", pipeline="p.yaml")


async def test_router_and_cascade_names_work_as_models(upstream_config, tmp_path):
    upstream, config = upstream_config
    config.write_text(config.read_text() + "cascades:\n  ladder:\n    rungs: [m]\n")
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS[:2])
    routed = await run_batch(
        processor(config, model="auto"), BatchOptions(source, tmp_path / "a.jsonl")
    )
    assert routed.done == 2 and all(r["model"] == "m" for r in read_jsonl(tmp_path / "a.jsonl"))
    laddered = await run_batch(
        processor(config, model="cascade-ladder"), BatchOptions(source, tmp_path / "c.jsonl")
    )
    rows = read_jsonl(tmp_path / "c.jsonl")
    assert laddered.done == 2 and all(r["escalations"] == 0 for r in rows)
    assert len(upstream.received) == 4


async def test_task_up_a_cascade_ladder(upstream_config, tmp_path):
    upstream, config = upstream_config
    config.write_text(config.read_text() + "cascades:\n  ladder:\n    rungs: [m]\n")
    task = tmp_path / "sentiment.yaml"
    task.write_text("kind: classify\nname: sentiment\nlabels: [negative, neutral, positive]\n")
    source = write_jsonl(tmp_path / "in.jsonl", ITEMS[:2])
    out = tmp_path / "out.jsonl"
    summary = await run_batch(
        processor(config, model="cascade-ladder", task=str(task)), BatchOptions(source, out)
    )
    rows = read_jsonl(out)
    assert summary.done == 2 and [r["label"] for r in rows] == ["positive", "positive"]
    prompt = " ".join(m["content"] for m in upstream.received[0]["messages"])
    assert all(label in prompt for label in ("negative", "neutral", "positive"))
