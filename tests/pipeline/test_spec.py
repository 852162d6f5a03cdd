import pytest

from smallfirst.errors import ConfigError
from smallfirst.pipeline.spec import load_pipeline, order_levels, parse_pipeline

TASK = {"kind": "summarize"}


def steps(*items):
    return {"name": "p", "steps": list(items)}


def test_levels_group_independent_steps():
    spec = parse_pipeline(
        steps(
            {"name": "a", "task": TASK},
            {"name": "b", "task": TASK},
            {"name": "c", "prompt": "{a} and {b}"},
            {"name": "d", "prompt": "x", "run_if": {"step_failed": "c"}},
        )
    )
    assert [[s.name for s in level] for level in order_levels(spec.steps)] == [
        ["a", "b"],
        ["c"],
        ["d"],
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (steps({"name": "a", "prompt": "{nope}"}), "unknown steps: ['nope']"),
        (steps({"name": "a", "prompt": "{b}"}, {"name": "b", "prompt": "{a}"}), "cycle"),
        (steps({"name": "a", "prompt": "x", "task": TASK}), "exactly one of `task` or `prompt`"),
        (steps({"name": "a", "prompt": "x"}, {"name": "a", "prompt": "y"}), "unique"),
        (
            steps({"name": "a", "prompt": "x", "escalate_if": {"input_chars_over": 5}}),
            "go together",
        ),
        (steps({"name": "a", "prompt": "x", "run_if": {}}), "at least one of"),
        (steps({"name": "a", "prompt": "x", "colour": 1}), "steps.0.colour: unknown key"),
        ({"name": "p", "steps": []}, "steps"),
        ("just text", "must be a mapping"),
    ],
)
def test_bad_specs_are_explained(bad, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_pipeline(bad)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline(tmp_path / "nope.yaml")
    broken = tmp_path / "p.yaml"
    broken.write_text("steps: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(broken)


def test_shipped_example_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples/pipelines/document_analysis.yaml"
    spec = load_pipeline(example)
    assert [s.name for s in spec.steps] == ["facts", "topics", "summary", "deep_analysis"]
