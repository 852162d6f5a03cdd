import json

from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.testing.scripted import Script

runner = CliRunner()
SPEC = "kind: classify\nname: sentiment\nlabels: [negative, positive]\nmax_tokens: 4\n"


def scripted_config(tmp_path, url):
    config = tmp_path / "smallfirst.yaml"
    config.write_text(
        f"models:\n  - name: big\n    backend: openai\n    base_url: {url}\n"
        f"tasks:\n  sentiment: {tmp_path / 'task.yaml'}\n"
    )
    (tmp_path / "task.yaml").write_text(SPEC)
    return config


def test_run_a_spec_file_on_the_embedded_model_as_json(tmp_path, embedded_model_path):
    (tmp_path / "task.yaml").write_text(SPEC)
    result = runner.invoke(app, ["run", "task.yaml", "--input", "I love it", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["label"] in ("negative", "positive") and body["model"] == "gemma-3-270m"


def test_run_a_configured_task_by_name(tmp_path, scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text='{"label": "negative"}'))
    config = scripted_config(tmp_path, url)
    result = runner.invoke(app, ["--config", str(config), "run", "sentiment", "-i", "awful"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("negative")
    assert "big" in result.stderr


def test_input_from_stdin_and_extract_output(tmp_path, scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text='{"city": "Oslo"}'))
    config = scripted_config(tmp_path, url)
    (tmp_path / "x.yaml").write_text(
        "kind: extract\nschema:\n  type: object\n  properties:\n    city: {type: string}\n"
    )
    result = runner.invoke(
        app, ["--config", str(config), "run", "x.yaml", "-i", "-"], input="weather in Oslo"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"city": "Oslo"}
    assert "weather in Oslo" in upstream.received[0]["messages"][-1]["content"]


def test_errors_are_one_line_with_exit_code_1(tmp_path, scripted):
    upstream, url = scripted
    config = scripted_config(tmp_path, url)
    missing = runner.invoke(app, ["--config", str(config), "run", "nope", "-i", "x"])
    assert missing.exit_code == 1 and "not configured" in missing.output
    (tmp_path / "bad.yaml").write_text("kind: classify\nlabels: [a, b]\ncolour: red\n")
    bad = runner.invoke(app, ["--config", str(config), "run", "bad.yaml", "-i", "x"])
    assert bad.exit_code == 1 and "bad.yaml:3" in bad.output and "colour" in bad.output
    upstream.enqueue(Script(text="hm"), Script(text="hm"))
    invalid = runner.invoke(app, ["--config", str(config), "run", "sentiment", "-i", "x"])
    assert invalid.exit_code == 1 and "invalid output twice" in invalid.output
