import numpy as np
import pytest

from smallfirst.errors import ConfigError
from smallfirst.tasks.examples import Example, ExampleBank, parse_examples


def test_inline_and_jsonl_examples(tmp_path):
    path = tmp_path / "ex.jsonl"
    path.write_text('{"input": "a", "output": "x"}\n\n{"input": "b", "output": "y"}\n')
    assert parse_examples(str(path)) == [Example("a", "x"), Example("b", "y")]
    assert parse_examples([{"input": "c", "output": "z"}]) == [Example("c", "z")]
    assert parse_examples(None) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", ":1: not valid JSON"),
        ('{"input": "a"}', "missing 'output'"),
        ('{"input": "a", "output": "x", "label": 1}', "unknown key 'label'"),
        ('{"input": "", "output": "x"}', "non-empty string"),
        ('["a", "x"]', "must be a mapping"),
    ],
)
def test_bad_example_lines_are_named(tmp_path, line, message):
    path = tmp_path / "ex.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=message):
        parse_examples(str(path))


def test_missing_examples_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse_examples(str(tmp_path / "none.jsonl"))


class AxisEmbedder:
    """Embeds a text by the counts of three keywords: distances are known exactly."""

    name, dim = "axis", 3

    def encode(self, texts):
        rows = [[t.count("cat"), t.count("dog"), t.count("car")] for t in texts]
        vectors = np.asarray(rows, dtype=np.float32) + 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_knn_picks_the_nearest_examples_closest_last():
    bank = ExampleBank(
        [
            Example("dog dog", "d"),
            Example("car", "v"),
            Example("cat", "c"),
            Example("cat dog", "m"),
        ],
        embedder=AxisEmbedder(),
    )
    picked = bank.select("cat cat cat", "knn", 2)
    assert [e.input for e in picked] == ["cat dog", "cat"]
    assert bank.select("x", "fixed", 2) == bank.examples[:2]
    assert bank.select("x", "none", 2) == []


def test_knn_with_minilm_prefers_the_same_topic():
    bank = ExampleBank(
        [
            Example("My card has not arrived yet", "card_arrival"),
            Example("What is the exchange rate for euros?", "exchange_rate"),
            Example("I want to close my account", "close_account"),
        ]
    )
    nearest = bank.nearest("When will my new card be delivered?", 1)
    assert nearest[0].output == "card_arrival"
