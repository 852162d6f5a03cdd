"""`choices` and `grammar` on the OpenAI-compatible backend: sent as GBNF in the `grammar`
field to a server declared `grammar: true` (llama.cpp's), else a 400 naming the field before
anything is sent (real scripted upstream)."""

import pytest

from smallfirst.config import ModelConfig
from smallfirst.errors import InvalidRequestError
from smallfirst.models.llamacpp_choice import choices_grammar
from smallfirst.models.openai import OpenAIProvider
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message

LABELS = ["negative", "positive"]
GBNF = 'root ::= "yes" | "no"'


def provider_for(url: str, grammar: bool | None = None) -> OpenAIProvider:
    capabilities = {} if grammar is None else {"grammar": grammar}
    return OpenAIProvider(
        ModelConfig(name="up", backend="openai", base_url=url, capabilities=capabilities)
    )


def ask(**params) -> ChatRequest:
    return ChatRequest([Message("user", "Is it good?")], GenerationParams(**params))


@pytest.mark.parametrize("field", ["choices", "grammar"])
@pytest.mark.parametrize("call", ["chat", "stream", "complete"])
async def test_a_server_without_grammar_refuses_the_field_and_is_sent_nothing(
    scripted, field, call
):
    upstream, url = scripted
    provider = provider_for(url)
    value = LABELS if field == "choices" else GBNF
    request = ask(**{field: value})
    with pytest.raises(InvalidRequestError) as err:
        if call == "chat":
            await provider.chat(request)
        elif call == "stream":
            [d async for d in provider.stream_chat(request)]
        else:
            await provider.complete(CompletionRequest("Is it good?", request.params))
    assert err.value.param == field and err.value.status == 400
    assert f"{field} needs a model that takes a grammar; 'up'" in err.value.message
    assert upstream.received == []
    await provider.aclose()


async def test_choices_go_to_a_grammar_server_as_the_gbnf_of_the_list(scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text="positive"), Script(text="positive"), Script(text="no"))
    provider = provider_for(url, grammar=True)
    answer = await provider.chat(ask(choices=LABELS, max_tokens=4))
    assert answer.text == "positive"
    sent = upstream.received[0]
    assert sent["grammar"] == choices_grammar(LABELS) == 'root ::= "negative" | "positive"'
    assert "response_format" not in sent and "choices" not in sent
    streamed = [d async for d in provider.stream_chat(ask(choices=LABELS))]
    assert "".join(d.text for d in streamed) == "positive"
    assert upstream.received[1]["grammar"] == choices_grammar(LABELS)
    await provider.complete(CompletionRequest("Answer:", GenerationParams(grammar=GBNF)))
    assert upstream.received[2]["grammar"] == GBNF and upstream.received[2]["prompt"]
    await provider.aclose()


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"choices": LABELS, "grammar": GBNF}, "grammar"),
        ({"choices": LABELS, "json_schema": {"type": "object"}}, "response_format"),
        ({"grammar": GBNF, "json_object": True}, "response_format"),
        ({"choices": []}, "choices"),
    ],
)
async def test_a_grammar_server_refuses_constraints_it_cannot_hold_at_once(scripted, params, param):
    upstream, url = scripted
    provider = provider_for(url, grammar=True)
    with pytest.raises(InvalidRequestError) as err:
        await provider.chat(ask(**params))
    assert err.value.param == param
    assert upstream.received == []
    await provider.aclose()
