from pathlib import Path

import pytest

from smallfirst.errors import ConfigError
from smallfirst.tasks.spec import ClassifySpec, ExtractSpec, load_spec, parse_spec


def write(tmp_path, text):
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return path


def test_classify_labels_accept_mapping_and_list_forms():
    mapped = parse_spec({"kind": "classify", "labels": {"spam": "ads", "ham": ""}})
    listed = parse_spec({"kind": "classify", "labels": ["spam", {"name": "ham"}]})
    assert isinstance(mapped, ClassifySpec)
    assert mapped.label_names == listed.label_names == ["spam", "ham"]
    assert mapped.labels[0].description == "ads"


def test_yaml_spec_loads_and_resolves_example_file_next_to_it(tmp_path):
    (tmp_path / "ex.jsonl").write_text('{"input": "hi", "output": "ham"}\n')
    spec = load_spec(
        write(tmp_path, "kind: classify\nname: spam\nlabels: [spam, ham]\nexamples: ex.jsonl\n")
    )
    assert spec.name == "spam"
    assert spec.examples == str(tmp_path / "ex.jsonl")


def test_unknown_key_is_named_with_its_line(tmp_path):
    path = write(tmp_path, "kind: classify\nlabels: [a, b]\nlabls: [c]\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert "task.yaml:3" in info.value.message
    assert "unknown key 'labls'" in info.value.message


def test_bad_value_names_the_nested_key(tmp_path):
    path = write(tmp_path, "kind: classify\nlabels: [a, b]\nfew_shot:\n  mode: nearest\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert "few_shot.mode" in info.value.message and "task.yaml:4" in info.value.message


def test_missing_or_unknown_kind_lists_the_kinds():
    with pytest.raises(ConfigError, match="kind: missing; use one of classify, extract"):
        parse_spec({"labels": ["a", "b"]})
    with pytest.raises(ConfigError, match="'translate' is not a task kind"):
        parse_spec({"kind": "translate"})


def test_classify_needs_two_unique_labels():
    with pytest.raises(ConfigError, match="labels"):
        parse_spec({"kind": "classify", "labels": ["only"]})
    with pytest.raises(ConfigError, match="repeated: \\['a'\\]"):
        parse_spec({"kind": "classify", "labels": ["a", "a", "b"]})


def test_extract_needs_exactly_one_schema_source():
    with pytest.raises(ConfigError, match="exactly one of `schema`"):
        parse_spec({"kind": "extract"})
    with pytest.raises(ConfigError, match=r'schema: .*"type": "object"'):
        parse_spec({"kind": "extract", "schema": {"type": "string"}})
    spec = parse_spec({"kind": "extract", "schema": {"type": "object", "properties": {}}})
    assert isinstance(spec, ExtractSpec)


def test_extract_rejects_an_invalid_json_schema():
    bad = {"type": "object", "properties": {"a": {"type": "strng"}}}
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        parse_spec({"kind": "extract", "schema": bad})


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(write(tmp_path, "kind: [classify\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_spec(write(tmp_path, "- classify\n"))


EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "tasks"


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_example_specs_load(path):
    from smallfirst.tasks import Task

    task = Task.from_yaml(path)
    assert task.spec.kind in ("classify", "extract", "summarize", "answer")


def test_unquoted_yes_no_labels_get_an_error_that_says_to_quote_them(tmp_path):
    path = write(tmp_path, "kind: classify\nlabels: [maybe, yes, no]\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = info.value.message
    assert "task.yaml:2: labels: item 1 (boolean True), item 2 (boolean False)" in message
    assert "quote each such label" in message and "valid dictionary" not in message
    quoted = load_spec(write(tmp_path, 'kind: classify\nlabels: [maybe, "yes", "no"]\n'))
    assert quoted.label_names == ["maybe", "yes", "no"]


@pytest.mark.parametrize(
    "labels", ["{yes: agrees, no: refuses}", "[{name: on}, {name: off}]", "[1, 2]", "[a, ~]"]
)
def test_every_label_form_refuses_yaml_non_text(tmp_path, labels):
    with pytest.raises(ConfigError, match="quote each such label"):
        load_spec(write(tmp_path, f"kind: classify\nlabels: {labels}\n"))
