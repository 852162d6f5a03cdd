"""Greedy choices answer what the grammar of the same strings answers, in fewer decode steps;
everything the shortcut cannot honour falls back to that grammar."""

import numpy as np
import pytest

from smallfirst.config import ModelConfig
from smallfirst.errors import SchemaError
from smallfirst.models.llamacpp import LlamaCppProvider
from smallfirst.models.llamacpp_choice import ChoiceIndex, PieceTable, choices_grammar
from smallfirst.types import CompletionRequest, GenerationParams

EOG = 1
TABLE = PieceTable(
    tokens_of={
        b" card": (5,),
        b"_": (6,),
        b"_arr": (7,),
        b"arrival": (8,),
        b"linking": (9,),
        b" c": (10,),
        b"ard": (11,),
        b"a": (2,),
        b"b": (3,),
        b"ab": (4,),
    },
    end_tokens=(EOG,),
    longest=7,
)


def test_allowed_tokens_keep_the_output_a_prefix_of_a_choice():
    index = ChoiceIndex([" card_arrival", " card_linking"], TABLE)
    assert index.options(b"").tokens.tolist() == [5, 10]  # " card" and " c", not "ard"
    after = index.options(b" card")
    assert after.tokens.tolist() == [6, 7] and after.pieces == (b"_", b"_arr")
    assert index.options(b" card_arr").live == (b" card_arrival",)
    assert index.options(b" card_arrival").tokens.tolist() == [EOG]


def test_an_end_token_is_allowed_where_a_choice_ends_inside_another():
    index = ChoiceIndex(["a", "ab", "a"], TABLE)  # duplicates count once
    assert index.choices == (b"a", b"ab")
    options = index.options(b"a")
    assert options.tokens.tolist() == [EOG, 3] and options.pieces == (b"", b"b")


def test_the_grammar_fallback_escapes_quotes():
    from llama_cpp import LlamaGrammar

    grammar = choices_grammar(['say "hi"', "no"])
    assert '"say \\"hi\\""' in grammar
    LlamaGrammar.from_string(grammar, verbose=False)


LABELS = [" card_arrival", " card_linking", " card_payment_fee_charged", " exchange_rate"]
PROMPTS = [
    "Message: my new card has not come yet\nIntent:",
    "Message: why was I charged a fee for paying by card?\nIntent:",
    "Message: what rate do you use for euros?\nIntent:",
    "Message: how do I link my card to the app\nIntent:",
]


@pytest.fixture
async def gemma(embedded_model_path):
    provider = LlamaCppProvider(ModelConfig(name="choice", backend="llamacpp", slots=1))
    yield provider
    await provider.aclose()


async def test_choices_answer_as_the_grammar_does_in_fewer_steps(gemma):
    async def run(**constraint) -> tuple[list[tuple], int]:
        await gemma.load()
        before = gemma._engine.evaluated
        answers = []
        for prompt in PROMPTS:
            params = GenerationParams(max_tokens=16, temperature=0.0, logprobs=True, **constraint)
            result = await gemma.complete(CompletionRequest(prompt, params))
            answers.append((result.text, result.finish_reason, result.usage.output_tokens))
            assert result.logprobs and all(np.isfinite(t.logprob) for t in result.logprobs)
        return answers, gemma._engine.evaluated - before

    grammar_answers, grammar_steps = await run(grammar=choices_grammar(LABELS))
    choice_answers, choice_steps = await run(choices=LABELS)
    assert choice_answers == grammar_answers
    assert {text for text, _, _ in choice_answers} <= set(LABELS)
    assert {reason for _, reason, _ in choice_answers} == {"stop"}
    assert choice_steps < grammar_steps  # the prompts are cached by then: steps only


async def test_streamed_choices_end_with_the_whole_label(gemma):
    params = GenerationParams(max_tokens=16, temperature=0.0, choices=LABELS)
    deltas = [d async for d in gemma.stream_complete(CompletionRequest(PROMPTS[1], params))]
    assert "".join(d.text for d in deltas) in LABELS
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage.output_tokens > 1


async def test_max_tokens_cuts_the_forced_rest(gemma):
    params = GenerationParams(max_tokens=2, temperature=0.0, choices=[" card_payment_fee_charged"])
    result = await gemma.complete(CompletionRequest(PROMPTS[1], params))
    assert result.finish_reason == "length" and result.usage.output_tokens == 2
    assert " card_payment_fee_charged".startswith(result.text) and result.text != ""


@pytest.mark.parametrize(
    "params",
    [
        GenerationParams(max_tokens=16, temperature=0.8, seed=3, choices=LABELS),
        GenerationParams(max_tokens=16, temperature=0.0, stop=["_"], choices=LABELS),
    ],
    ids=["sampling", "stop-sequence"],
)
async def test_what_the_shortcut_cannot_honour_goes_through_the_grammar(gemma, params):
    result = await gemma.complete(CompletionRequest(PROMPTS[0], params))
    cut = {label.split(stop)[0] for label in LABELS for stop in params.stop or ["\0"]}
    assert result.text in cut  # a choice, cut where a stop sequence begins


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (GenerationParams(choices=LABELS, grammar='root ::= "x"'), "grammar and choices"),
        (GenerationParams(choices=LABELS, json_schema={"type": "object"}), "json_schema and"),
        (GenerationParams(choices=[]), "choices is empty"),
    ],
)
async def test_conflicting_or_empty_choices_are_refused(gemma, params, message):
    with pytest.raises(SchemaError, match=message):
        await gemma.complete(CompletionRequest(PROMPTS[0], params))
