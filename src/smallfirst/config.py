"""`smallfirst.yaml`: the one file naming models, tiers, prices and routes.

Validated with pydantic; an error names the bad key and the line it is on. With no file,
the embedded Gemma 3 270M model alone is configured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smallfirst.errors import ConfigError
from smallfirst.types import TIERS, Tier

CONFIG_ENV = "SMALLFIRST_CONFIG"
DEFAULT_CONFIG_NAME = "smallfirst.yaml"
EMBEDDED_MODEL_NAME = "gemma-3-270m"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(Strict):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class ModelConfig(Strict):
    name: str = Field(min_length=1)
    backend: Literal["llamacpp", "openai", "anthropic", "replay", "student"]
    tier: Tier = "small"
    upstream_model: str | None = None
    """The model's name at its provider; defaults to `name`."""
    path: str | None = None
    """GGUF file for `llamacpp`; default: the packaged Gemma 3 270M."""
    base_url: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (read when the model is first used)."""
    price: Price | None = None
    hourly_usd: float | None = Field(default=None, ge=0)
    """Self-hosted cost; with measured tokens/s it gives a per-token price."""
    tokens_per_second: float | None = Field(default=None, gt=0)
    context: int = Field(default=4096, ge=256)
    prompt_style: Literal["chat", "completion"] | None = None
    """`completion` for base models: prompts are written as plain text, not chat turns."""
    timeout_s: float = Field(default=60.0, gt=0)
    threads: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    """Extra backend arguments (e.g. llama.cpp `n_batch`, replay `outcomes`)."""

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError(
                f"model {self.name!r}: an openai backend needs base_url "
                "(e.g. http://localhost:8000/v1)"
            )
        return self

    @property
    def style(self) -> Literal["chat", "completion"]:
        if self.prompt_style:
            return self.prompt_style
        return "completion" if self.backend == "llamacpp" else "chat"


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    auth: bool = False
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    ledger_url: str | None = None
    """SQLAlchemy URL; default a SQLite file in the state directory."""
    log_prompts: bool = True
    redact: bool = False
    """With log_prompts: mask e-mails, phone and card numbers (etc.) in logged prompts/outputs."""
    redis_url: str | None = None
    """`redis://host:port/db`: rate limits, budgets and cooldowns shared by several replicas."""
    max_header_bytes: int = Field(default=65_536, ge=1024)
    """Request line plus headers; more is a 431 and the connection is closed."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """How long a connection may take to send a request's headers (counted from the connect, or
    from the previous answer on a kept-alive connection); then a 408 and the connection closes."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """How long the whole request body may take to arrive once the headers are in; then a 408."""
    keep_alive_s: float = Field(default=5.0, gt=0)
    """An idle kept-alive connection is closed after this long."""
    max_connections: int = Field(default=1024, ge=1)
    """Open connections (and requests in flight) in all; beyond it new requests get a 503."""
    max_connections_per_client: int | None = Field(default=128, ge=1)
    """Open connections from one client IP address; beyond it a 429. None: no per-client cap
    (behind a load balancer every client shares its address)."""


class FailoverConfig(Strict):
    """Retries, fallbacks and cooldowns for every routed call (cascade rungs included)."""

    retries: int = Field(default=2, ge=0, le=10)
    """Extra attempts on the same model after a 429, 5xx, reset or timeout."""
    backoff_s: float = Field(default=0.25, ge=0)
    """First wait between attempts; doubles each time, capped by `max_backoff_s`."""
    max_backoff_s: float = Field(default=4.0, ge=0)
    max_retry_after_s: float = Field(default=10.0, ge=0)
    """A 429 asking to wait longer than this falls back to another model instead."""
    deadline_s: float = Field(default=120.0, gt=0)
    """Total time one request may take, all hops together."""
    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive failures that open a model's circuit (it is skipped while cooling down)."""
    cooldown_s: float = Field(default=30.0, ge=0)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    """Explicit fallback order per model; default: same tier by price, then higher tiers."""


CheckKind = Literal["logprob", "agreement", "constraint", "scorer", "judge"]


class CheckConfig(Strict):
    """One verification of a rung's answer; the answer is kept only if every check passes."""

    kind: CheckKind
    threshold: float | None = None
    """Minimum score to pass (each kind has a default; `smallfirst cascade calibrate` sets it)."""
    samples: int = Field(default=3, ge=2, le=10)
    """`agreement`: answers drawn in all (the first answer included)."""
    temperature: float = Field(default=0.8, ge=0, le=2)
    """`agreement`: sampling temperature of the extra answers."""
    labels: list[str] | None = None
    """`constraint`: the answer must be one of these labels."""
    json_schema: dict[str, Any] | None = None
    """`constraint`: the answer must be JSON valid against this schema."""
    allow_refusal: bool = False
    """`constraint`: keep answers that refuse ("I can't help with that")."""
    path: str | None = None
    """`scorer`: the trained scorer file from `smallfirst cascade train-scorer`."""
    model: str | None = None
    """`judge`: the (larger) model asked whether the answer is right."""

    @model_validator(mode="after")
    def _kind_fields(self) -> CheckConfig:
        if self.kind == "scorer" and not self.path:
            raise ValueError("a scorer check needs `path` (see `smallfirst cascade train-scorer`)")
        if self.kind == "judge" and not self.model:
            raise ValueError("a judge check needs `model`: the model that judges the answer")
        return self


class CascadeConfig(Strict):
    """Answer on the first rung, check, escalate to the next rung only when a check fails."""

    rungs: list[str] = Field(min_length=1)
    """Model names or tier names (`tiny`, `small`, `medium`, `large`), cheapest first."""
    checks: list[CheckConfig] = Field(default_factory=list)
    router: str | None = None
    """A router name (e.g. `auto`): start at the rung it picks, skipping rungs it predicts fail."""
    deadline_s: float | None = Field(default=None, gt=0)
    """Overrides `failover.deadline_s` for this cascade."""
    check_last_rung: bool = False
    """Run the checks on the last rung too (its answer is returned either way)."""


class RetentionConfig(Strict):
    """How long the ledger keeps raw rows; the rollups (spend, budgets, savings) stay."""

    prompts_days: float | None = Field(default=30, gt=0)
    """Prompt and answer text older than this is blanked (None: kept)."""
    rows_days: float | None = Field(default=400, gt=0)
    """Raw request and hop rows older than this are deleted (None: kept)."""
    interval_s: float = Field(default=3600, gt=0)
    """How often a running gateway prunes, in batches of `batch_rows`."""
    batch_rows: int = Field(default=1000, ge=1)


class LedgerConfig(Strict):
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class Config(Strict):
    models: list[ModelConfig] = Field(default_factory=list)
    default_model: str | None = None
    """Model used for `model: "default"`; default the first small-tier model."""
    baseline_model: str | None = None
    """The always-large model savings are measured against; default the priciest model."""
    server: ServerConfig = Field(default_factory=ServerConfig)
    routers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    cascades: dict[str, CascadeConfig] = Field(default_factory=dict)
    failover: FailoverConfig = Field(default_factory=FailoverConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    pipelines: dict[str, str] = Field(default_factory=dict)
    """Pipeline name -> pipeline YAML path (for `/v1/pipelines/{name}` and the CLI)."""
    tasks: dict[str, str] = Field(default_factory=dict)
    """Task name -> task spec YAML path (for `POST /v1/tasks/{name}` and `smallfirst run`)."""

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        seen: set[str] = set()
        for model in models:
            if model.name in seen:
                raise ValueError(f"model name {model.name!r} is used twice")
            seen.add(model.name)
        return models

    @model_validator(mode="after")
    def _defaults(self) -> Config:
        if not self.models:
            self.models = [embedded_model()]
        names = {m.name for m in self.models}
        for key in ("default_model", "baseline_model"):
            value = getattr(self, key)
            if value is not None and value not in names:
                raise ValueError(f"{key} {value!r} is not one of the models: {sorted(names)}")
        return self

    @model_validator(mode="after")
    def _cascade_refs(self) -> Config:
        names = {m.name for m in self.models}
        for cascade_name, cascade in self.cascades.items():
            refs = list(cascade.rungs) + [c.model for c in cascade.checks if c.model]
            for ref in refs:
                if ref not in names and ref not in TIERS:
                    raise ValueError(
                        f"cascade {cascade_name!r}: {ref!r} is neither a model "
                        f"({sorted(names)}) nor a tier ({', '.join(TIERS)})"
                    )
        return self


def embedded_model() -> ModelConfig:
    return ModelConfig(
        name=EMBEDDED_MODEL_NAME,
        backend="llamacpp",
        tier="small",
        context=2048,
        prompt_style="completion",
    )


def state_dir() -> Path:
    """Where ledgers, keys and caches live: $SMALLFIRST_HOME or ./.smallfirst."""
    path = Path(os.environ.get("SMALLFIRST_HOME", ".smallfirst"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_config_path(path: str | Path | None = None) -> Path | None:
    if path is not None:
        return Path(path)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.exists() else None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config; no file means the embedded model alone."""
    found = find_config_path(path)
    if found is None:
        return Config()
    if not found.exists():
        raise ConfigError(f"config file {found} does not exist")
    config = parse_config(found.read_text(), source=str(found))
    resolve_model_paths(config, found.resolve().parent)
    return config


MODEL_PATH_OPTIONS = ("path", "outcomes")
"""`options` keys naming a file: a student's `path`, a replay model's `outcomes`."""


def resolve_model_paths(config: Config, base: Path) -> None:
    """Make the models' relative file paths relative to `base` (the config file's folder), so
    a config means the same files whatever directory a command is started from."""
    for model in config.models:
        if model.path:
            model.path = _beside(model.path, base)
        for key in MODEL_PATH_OPTIONS:
            value = model.options.get(key)
            if isinstance(value, str) and value:
                model.options[key] = _beside(value, base)


def _beside(path: str, base: Path) -> str:
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else base / expanded)


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not {type(data).__name__}"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, source)) from None


def _describe(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    lines = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if not isinstance(part, str) or part[0] != "_"]
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(root, loc)
        where = f"{source}:{line}" if line else source
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        lines.append(f"{where}: {key}: {message}")
    return "invalid config\n  " + "\n  ".join(lines)


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int | None:
    """1-based line of the YAML node at `loc`, or of the deepest ancestor found."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            key_node = next((k for k, _ in node.value if k.value == str(part)), None)
            if key_node is not None:
                line = key_node.start_mark.line + 1
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
            if node is not None:
                line = node.start_mark.line + 1
        else:
            break
        if node is None:
            break
    return line
