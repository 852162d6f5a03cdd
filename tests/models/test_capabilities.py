"""Declared capabilities: backend defaults, overrides in smallfirst.yaml, plugin backends."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from smallfirst.config import ModelConfig, parse_config
from smallfirst.errors import ConfigError
from smallfirst.evaluate.projection import Workload, project
from smallfirst.models import capabilities as caps_module
from smallfirst.models import registry as registry_module
from smallfirst.models.capabilities import Capabilities, capabilities_of, is_loopback_url
from smallfirst.models.registry import Registry, register_backend
from smallfirst.tasks.output import constraint_for


def _caps(**model) -> Capabilities:
    return capabilities_of(ModelConfig(name="m", **model))


def test_backend_defaults() -> None:
    embedded = _caps(backend="llamacpp")
    assert embedded.local and embedded.json_schema and embedded.grammar and embedded.logprobs
    assert embedded.embedded and embedded.tools and not embedded.vision  # tools by grammar
    claude = _caps(backend="anthropic")
    assert claude.tools and claude.vision and not claude.local and not claude.json_schema
    assert _caps(backend="replay").local and _caps(backend="student").local
    assert _caps(backend="llamacpp", context=2048).context == 2048


@pytest.mark.parametrize(
    ("base_url", "local"),
    [
        ("https://api.openai.com/v1", False),
        ("http://10.0.0.5:8000/v1", False),  # your network, maybe: declare it
        ("http://192.168.1.20:11434/v1", False),
        ("http://127.0.0.1:11434/v1", True),  # Ollama on this machine
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://127.0.0.1.evil.example/v1", False),
    ],
)
def test_openai_compatible_is_local_only_on_loopback(base_url: str, local: bool) -> None:
    assert _caps(backend="openai", base_url=base_url).local is local
    assert is_loopback_url(base_url) is local


def test_openai_json_schema_needs_chat() -> None:
    url = "http://127.0.0.1:9/v1"
    assert _caps(backend="openai", base_url=url).json_schema
    assert not _caps(backend="openai", base_url=url, prompt_style="completion").json_schema


def test_overrides_in_the_config_reach_the_registry_entry() -> None:
    registry = Registry(
        parse_config(
            "models:\n"
            "  - name: qwen\n"
            "    backend: openai\n"
            "    base_url: http://10.0.0.5:8000/v1\n"
            "    context: 32768\n"
            "    capabilities: {local: true, vision: true, logprobs: false}\n"
        )
    )
    caps = registry.get("qwen").capabilities
    assert (caps.local, caps.vision, caps.logprobs, caps.tools) == (True, True, False, True)
    assert caps.context == 32768


def test_an_unknown_capability_names_its_line() -> None:
    text = "models:\n  - name: a\n    backend: llamacpp\n    capabilities: {locale: true}\n"
    with pytest.raises(ConfigError, match=r"x\.yaml:4: models\.0\.capabilities\.locale: unknown"):
        parse_config(text, source="x.yaml")


def test_unknown_backend_fails_at_load_with_the_fix() -> None:
    with pytest.raises(
        ConfigError, match=r"x\.yaml:2: models\.0\.backend: unknown backend 'olama'"
    ):
        parse_config("models:\n  - {name: a, backend: olama}\n", source="x.yaml")


def test_a_registered_backend_is_accepted_by_the_config(monkeypatch) -> None:
    monkeypatch.setattr(registry_module, "BACKENDS", dict(registry_module.BACKENDS))
    monkeypatch.setattr(caps_module, "BACKEND_DEFAULTS", dict(caps_module.BACKEND_DEFAULTS))
    monkeypatch.setattr(caps_module, "PROMPT_STYLES", dict(caps_module.PROMPT_STYLES))

    def factory(config: ModelConfig):
        raise AssertionError("providers are made on first use, not when the config loads")

    register_backend("onprem", factory, Capabilities(local=True, tools=True))
    register_backend("mystery", "some.module:Provider")
    models = "models:\n  - {name: a, backend: onprem}\n  - {name: b, backend: mystery}\n"
    registry = Registry(parse_config(models))
    assert registry.get("a").capabilities.local and registry.get("a").capabilities.tools
    assert registry.get("b").capabilities == Capabilities()  # nothing declared: not local


def test_the_prompt_style_default_is_the_backends() -> None:
    url = "http://127.0.0.1:9/v1"
    assert ModelConfig(name="g", backend="llamacpp").style == "completion"
    assert ModelConfig(name="g", backend="llamacpp", prompt_style="chat").style == "chat"
    assert ModelConfig(name="o", backend="openai", base_url=url).style == "chat"
    assert ModelConfig(name="c", backend="anthropic").style == "chat"


def test_a_plugin_backend_declares_its_prompt_style(monkeypatch) -> None:
    monkeypatch.setattr(registry_module, "BACKENDS", dict(registry_module.BACKENDS))
    monkeypatch.setattr(caps_module, "BACKEND_DEFAULTS", dict(caps_module.BACKEND_DEFAULTS))
    monkeypatch.setattr(caps_module, "PROMPT_STYLES", dict(caps_module.PROMPT_STYLES))
    register_backend("base-gguf", "some.module:Provider", prompt_style="completion")
    register_backend("chatty", "some.module:Provider")
    models = (
        "models:\n  - {name: a, backend: base-gguf}\n  - {name: b, backend: chatty}\n"
        "  - {name: c, backend: base-gguf, prompt_style: chat}\n"
    )
    registry = Registry(parse_config(models))
    styles = [registry.get(name).config.style for name in "abc"]
    assert styles == ["completion", "chat", "chat"]


def test_pricing_reads_local_not_the_backend() -> None:
    registry = Registry(
        parse_config(
            "models:\n"
            "  - {name: ollama, backend: openai, base_url: 'http://127.0.0.1:11434/v1'}\n"
            "  - {name: vllm, backend: openai, base_url: 'http://10.0.0.5:8000/v1',"
            " capabilities: {local: true}, hourly_usd: 2.0, tokens_per_second: 1000}\n"
            "  - {name: gpt-4o, backend: openai, base_url: 'https://api.openai.com/v1',"
            " tier: large}\n"
        )
    )
    assert registry.get("ollama").price.source == "local"
    assert registry.get("gpt-4o").price.source == "genai-prices"
    rows = {p.model: p for p in project(registry, Workload(1_000_000, 1000, 0))}
    assert rows["vllm"].hours == pytest.approx(1_000_000 * 1000 / 1000 / 3600)
    assert rows["ollama"].usd_total == 0 and rows["gpt-4o"].hours is None


def test_task_constraints_follow_capabilities() -> None:
    url = "http://127.0.0.1:9/v1"
    assert constraint_for(ModelConfig(name="g", backend="llamacpp")) == "grammar"
    assert constraint_for(ModelConfig(name="o", backend="openai", base_url=url)) == (
        "response_format"
    )
    refusing = ModelConfig(
        name="o", backend="openai", base_url=url, capabilities={"json_schema": False}
    )
    assert constraint_for(refusing) == "none"
    assert constraint_for(ModelConfig(name="c", backend="anthropic")) == "none"


README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_BACKENDS = ("llamacpp", "openai", "anthropic", "replay", "student")


def _readme_capabilities() -> dict[str, list[str]]:
    """The README's capability table: each capability's cells, one per backend column (the
    last column, `replay, student`, stands for both)."""
    section = README.read_text().split("| capability | meaning |")[1].split("\n\n")[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines()[2:]:
        name, _meaning, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        rows[name.strip("`")] = [*cells, cells[-1]]
    return rows


def test_the_readme_capability_table_says_what_the_backends_declare() -> None:
    rows = _readme_capabilities()
    flags = {f.name for f in fields(Capabilities) if f.type == "bool"}
    assert set(rows) == flags
    for name, cells in rows.items():
        for backend, cell in zip(TABLE_BACKENDS, cells, strict=True):
            said = re.match(r"(yes|no)\b", cell)
            if said is None:  # a condition (`local` on openai: only on a loopback base_url)
                continue
            declared = getattr(_caps(backend=backend, base_url="https://api.example/v1"), name)
            assert declared is (said[1] == "yes"), (name, backend, cell)
