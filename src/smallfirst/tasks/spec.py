"""Task specs: what a user wants done, declared in YAML or Python, validated once.

A spec names the task kind and its closed output space (labels, a schema, a length), plus
optional labelled examples. Small models need that closed space spelled out; the prompt
builder and the output constraints are derived from it, never written by the user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smallfirst.config import _describe
from smallfirst.errors import ConfigError

TaskKind = Literal["classify", "extract", "summarize", "answer"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Label(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    """Shown next to the label in the prompt: the one place to say what a label means."""


class FewShot(_Strict):
    """How examples are put into the prompt."""

    mode: Literal["none", "fixed", "knn"] = "fixed"
    """`fixed`: the first `k` examples for every input; `knn`: the `k` most similar to the input
    (MiniLM cosine similarity), so each input sees the examples most like it."""
    k: int = Field(default=4, ge=0, le=64)


class _BaseSpec(_Strict):
    name: str = Field(default="task", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    instructions: str = ""
    """Extra task-specific guidance, added after the built-in instruction."""
    input_name: str = Field(default="Text", min_length=1)
    """What the input is called in the prompt (`Message`, `Tweet`, `Question`)."""
    examples: list[dict[str, Any]] | str | None = None
    """Labelled examples `{input, output}` inline, or a JSONL file path (relative to the spec)."""
    few_shot: FewShot = Field(default_factory=FewShot)
    model: str | None = None
    """Default model or router name; `run(model=...)` overrides it."""
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0, le=2)
    layout: Literal["instruction_first", "input_first"] = "instruction_first"
    """`input_first` puts the input before the instruction, so tasks over the same text share
    a prompt prefix: the embedded model reads it once for all of them (a pipeline's steps over
    one document). It takes no examples (they would sit between the input and its cue)."""

    @model_validator(mode="after")
    def _input_first_has_no_examples(self) -> _BaseSpec:
        if self.layout == "input_first" and self.examples:
            raise ValueError("layout input_first takes no examples: remove them or the layout")
        return self


class ClassifySpec(_BaseSpec):
    kind: Literal["classify"] = "classify"
    labels: list[Label] = Field(min_length=2)
    method: Literal["generate", "score"] = "generate"
    """`generate`: the model writes one label, held to the list by a grammar / response_format;
    `score`: every label's likelihood is computed and the best wins (embedded model only;
    costs one short decode per label, gives a calibrated confidence)."""

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_forms(cls, value: Any) -> Any:
        """Accept `{name: description}`, `[name, ...]` or `[{name, description}, ...]`."""
        if isinstance(value, dict):
            _refuse_yaml_scalars(list(value))
            return [{"name": str(k), "description": str(v or "")} for k, v in value.items()]
        if isinstance(value, list):
            names = [v.get("name") if isinstance(v, dict) else v for v in value]
            _refuse_yaml_scalars(names)
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("labels")
    @classmethod
    def _unique(cls, labels: list[Label]) -> list[Label]:
        names = [label.name for label in labels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"label names must be unique; repeated: {twice}")
        return labels

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]


def _refuse_yaml_scalars(names: list[Any]) -> None:
    """YAML reads an unquoted `yes`, `no`, `on`, `off`, `true`, `false` as a boolean, `null` or
    `~` as nothing, and `1` or `1.5` as a number: say which labels and how to fix them, instead
    of pydantic's "Input should be a valid dictionary"."""
    read_as = {
        index: _yaml_type(name)
        for index, name in enumerate(names)
        if name is None or isinstance(name, bool | int | float)
    }
    if not read_as:
        return
    which = ", ".join(f"item {i} ({kind} {names[i]!r})" for i, kind in read_as.items())
    raise ValueError(
        f"{which}: YAML reads an unquoted yes/no/on/off/true/false as a boolean, null or ~ as "
        'nothing and digits as a number; quote each such label, e.g. ["yes", "no"]'
    )


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"


class ExtractSpec(_BaseSpec):
    kind: Literal["extract"] = "extract"
    output_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    """A JSON schema (type object) for the fields to extract."""
    pydantic_model: str | None = None
    """Or `package.module:ClassName` of a pydantic model (Python API: pass the class)."""

    @field_validator("output_schema")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
            raise ValueError('must be a JSON schema with "type": "object" and "properties"')
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError as JsonSchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except JsonSchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return schema

    @model_validator(mode="after")
    def _one_schema(self) -> ExtractSpec:
        if (self.output_schema is None) == (self.pydantic_model is None):
            raise ValueError("give exactly one of `schema` (a JSON schema) or `pydantic_model`")
        return self


class SummarizeSpec(_BaseSpec):
    kind: Literal["summarize"] = "summarize"
    max_words: int = Field(default=60, ge=3, le=2000)
    style: Literal["paragraph", "bullets", "one_sentence", "headline"] = "paragraph"
    focus: str = ""
    """What the summary should be about (e.g. `decisions and owners`)."""


class AnswerSpec(_BaseSpec):
    kind: Literal["answer"] = "answer"
    input_name: str = Field(default="Question", min_length=1)
    context: list[str] = Field(default_factory=list)
    """Fixed passages to answer from when no retriever is given."""
    knowledge_base: str | None = None
    """A `smallfirst kb` base to retrieve passages from when no retriever is given."""
    k: int = Field(default=4, ge=1, le=50)
    """Passages asked of the retriever per question."""
    max_words: int = Field(default=80, ge=3, le=2000)
    unknown_answer: str = "I don't know."
    """What the model must say when the passages do not contain the answer."""


TaskSpec = ClassifySpec | ExtractSpec | SummarizeSpec | AnswerSpec
SPEC_KINDS: dict[str, type[_BaseSpec]] = {
    "classify": ClassifySpec,
    "extract": ExtractSpec,
    "summarize": SummarizeSpec,
    "answer": AnswerSpec,
}


def parse_spec(data: Any, source: str = "<task>", root: yaml.Node | None = None) -> TaskSpec:
    """Validate a spec mapping; errors name the key (and the YAML line when known)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a task spec must be a mapping, not {type(data).__name__}")
    kind = data.get("kind")
    if kind not in SPEC_KINDS:
        got = "missing" if kind is None else f"{kind!r} is not a task kind"
        raise ConfigError(f"{source}: kind: {got}; use one of {', '.join(SPEC_KINDS)}")
    try:
        return SPEC_KINDS[kind].model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        message = _describe(exc, root, source)
        raise ConfigError(message.replace("invalid config", "invalid task spec", 1)) from None


def load_spec(path: str | Path) -> TaskSpec:
    """Read a YAML spec file. Relative example paths are resolved against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"task spec {path} does not exist")
    text = path.read_text()
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    spec = parse_spec(data, source=str(path), root=root)
    if isinstance(spec.examples, str) and not Path(spec.examples).is_absolute():
        spec.examples = str(path.parent / spec.examples)
    return spec
