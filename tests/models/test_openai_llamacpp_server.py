"""The OpenAI-compatible backend against llama-cpp-python's own server (embedded model)."""

import subprocess
import sys
import time

import httpx
import pytest

from smallfirst.config import ModelConfig
from smallfirst.models.openai import OpenAIProvider
from smallfirst.testing import free_port
from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message

pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")


# The server loads the model as we do (no AMX weight repacking, which crashes every decode on
# Xeons that report AMX with llama-cpp-python 0.3.36); its arguments are passed through.
SERVE_WITHOUT_REPACKING = (
    "import runpy, sys; from smallfirst.models.llamacpp import no_weight_repacking\n"
    "with no_weight_repacking():\n"
    "    runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)"
)


@pytest.fixture(scope="module")
def llama_server(embedded_model_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVE_WITHOUT_REPACKING,
            "--model",
            embedded_model_path,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--model_alias",
            "gemma",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("llama_cpp.server did not start")
    yield url + "/v1"
    process.terminate()
    process.wait(timeout=20)


async def test_completion_and_stream_against_llama_cpp_server(llama_server):
    provider = OpenAIProvider(
        ModelConfig(
            name="remote-gemma", backend="openai", base_url=llama_server, upstream_model="gemma"
        )
    )
    result = await provider.complete(
        CompletionRequest("The capital of France is", GenerationParams(max_tokens=5))
    )
    assert result.text and result.usage.output_tokens == 5
    deltas = [
        d
        async for d in provider.stream_complete(
            CompletionRequest("Once upon a time", GenerationParams(max_tokens=6))
        )
    ]
    assert "".join(d.text for d in deltas)
    chat = await provider.chat(
        ChatRequest([Message("user", "Say hi")], GenerationParams(max_tokens=5))
    )
    assert chat.usage.input_tokens > 0
    await provider.aclose()


async def test_choices_hold_a_llama_cpp_server_declared_grammar_to_the_list(llama_server):
    """`grammar: true` on an OpenAI-compatible model: the choices go as GBNF in llama.cpp's
    `grammar` field, and the server can write nothing else."""
    provider = OpenAIProvider(
        ModelConfig(
            name="remote-gemma",
            backend="openai",
            base_url=llama_server,
            upstream_model="gemma",
            capabilities={"grammar": True},
        )
    )
    labels = ["Zebra crossing", "Quokka"]
    chat = await provider.chat(
        ChatRequest(
            [Message("user", "Name a colour.")],
            GenerationParams(max_tokens=8, temperature=0.0, choices=labels),
        )
    )
    assert chat.text in labels
    completion = await provider.complete(
        CompletionRequest(
            "The capital of France is",
            GenerationParams(max_tokens=8, temperature=0.0, grammar='root ::= " Quokka"'),
        )
    )
    assert completion.text == " Quokka"
    await provider.aclose()
