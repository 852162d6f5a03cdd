import json

from typer.testing import CliRunner

from smallfirst.cli import app

runner = CliRunner()


def test_models_lists_the_embedded_model():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "gemma-3-270m" in result.output and "local" in result.output


def test_models_with_bad_config_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: a\n    backend: nope\n")
    result = runner.invoke(app, ["--config", str(bad), "models"])
    assert result.exit_code == 1
    assert "bad.yaml:3" in result.output


def test_ask_streams_and_reports_cost(embedded_model_path):
    result = runner.invoke(app, ["ask", "Say hello.", "--max-tokens", "5"])
    assert result.exit_code == 0, result.output
    assert "tokens" in result.output and "$0" in result.output


def test_ask_with_schema_prints_valid_json(embedded_model_path, tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps(
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        )
    )
    result = runner.invoke(app, ["ask", "Where is the Eiffel tower?", "--json-schema", str(schema)])
    assert result.exit_code == 0, result.output
    first_line = result.stdout.strip().splitlines()[0]
    assert "city" in json.loads(first_line)


def test_ask_unknown_model_fails_cleanly():
    result = runner.invoke(app, ["ask", "hi", "--model", "gpt-9"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
