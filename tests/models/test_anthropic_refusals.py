"""What Anthropic's API cannot take is a 400 naming the field, never dropped: nothing is sent
to the (real, local) Messages API server."""

import pytest

from smallfirst.config import ModelConfig
from smallfirst.errors import InvalidRequestError
from smallfirst.models.anthropic import AnthropicProvider
from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message


def provider(url: str) -> AnthropicProvider:
    return AnthropicProvider(ModelConfig(name="claude", backend="anthropic", base_url=url))


@pytest.mark.parametrize(
    ("field", "value"), [("choices", ["yes", "no"]), ("grammar", 'root ::= "yes"')]
)
@pytest.mark.parametrize("call", ["chat", "stream", "complete"])
async def test_choices_and_grammar_are_refused_by_name(anthropic_upstream, field, value, call):
    p = provider(anthropic_upstream.url)
    params = GenerationParams(max_tokens=5, **{field: value})
    request = ChatRequest([Message("user", "Yes or no?")], params)
    with pytest.raises(InvalidRequestError) as err:
        if call == "chat":
            await p.chat(request)
        elif call == "stream":
            [d async for d in p.stream_chat(request)]
        else:
            await p.complete(CompletionRequest("Yes or no?", params))
    assert err.value.param == field and err.value.status == 400
    assert "Anthropic's API takes none" in err.value.message
    assert anthropic_upstream.received == []
    await p.aclose()
