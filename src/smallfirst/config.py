"""`smallfirst.yaml`: the one file naming models, tiers, prices and routes.

Validated with pydantic; an error names the bad key and the line it is on. With no file,
the embedded Gemma 3 270M model alone is configured.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

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
    cached_input: float | None = Field(default=None, ge=0)
    """Prompt tokens read from the provider's prompt cache; unset: the input price."""
    cache_write: float | None = Field(default=None, ge=0)
    """Prompt tokens written to the provider's prompt cache; unset: the input price."""


class CapabilitiesConfig(Strict):
    """Declared capabilities; a key left out keeps the backend's default
    (see smallfirst.models.capabilities)."""

    local: bool | None = None
    """The data never leaves this network: personal data may go to this model."""
    tools: bool | None = None
    vision: bool | None = None
    audio: bool | None = None
    files: bool | None = None
    message_names: bool | None = None
    image_detail: bool | None = None
    json_schema: bool | None = None
    grammar: bool | None = None
    logprobs: bool | None = None
    embedded: bool | None = None


class ModelConfig(Strict):
    name: str = Field(min_length=1)
    backend: str
    """A built-in backend (`llamacpp`, `openai`, `anthropic`, `replay`, `student`) or one
    added with `smallfirst.models.register_backend` before the config is loaded."""
    tier: Tier = "small"
    upstream_model: str | None = None
    """The model's name at its provider; defaults to `name`."""
    path: str | None = None
    """GGUF file for `llamacpp`; default: the packaged Gemma 3 270M."""
    adapter: str | None = None
    """`llamacpp`: a LoRA adapter GGUF applied on the base (`smallfirst distill finetune`)."""
    base_url: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (read when the model is first used)."""
    price: Price | None = None
    hourly_usd: float | None = Field(default=None, ge=0)
    """Self-hosted cost; with measured tokens/s it gives a per-token price."""
    tokens_per_second: float | None = Field(default=None, gt=0)
    context: int = Field(default=4096, ge=256)
    prompt_style: Literal["chat", "completion"] | None = None
    """`completion` for base models: prompts are written as plain text, not chat turns.
    None: the backend's declared default (`ModelConfig.style`)."""
    timeout_s: float = Field(default=60.0, gt=0)
    threads: int | None = Field(default=None, ge=1)
    """llama.cpp threads; default: every core this process may use."""
    slots: int = Field(default=4, ge=1, le=64)
    """llama.cpp: requests decoded together in one batch (sequences of one context)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Extra backend arguments (e.g. llama.cpp `n_batch`, replay `outcomes`)."""
    capabilities: CapabilitiesConfig = Field(default_factory=CapabilitiesConfig)
    """Overrides of the backend's default capabilities (`local`, `tools`, `vision`, ...)."""

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, backend: str) -> str:
        # Imported here: the backend table lives with the providers, which import this module.
        from smallfirst.models.registry import BACKENDS

        if backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {backend!r}; known: {', '.join(BACKENDS)} "
                "(a plugin adds one with smallfirst.models.register_backend before loading)"
            )
        return backend

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
        """`prompt_style`, else the backend's declared default (`register_backend`)."""
        if self.prompt_style:
            return self.prompt_style
        # Imported here: the backend table lives with the providers, which import this module.
        from smallfirst.models.capabilities import default_prompt_style

        return default_prompt_style(self.backend)


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
    """Retries, fallbacks and cooldowns for every call of every model: direct and routed
    requests, batch items, tasks, pipeline steps and cascade rungs (`routing/resilience.py`)."""

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
        foreign = sorted(self.model_fields_set - CHECK_KEYS[self.kind] - {"kind", "threshold"})
        if foreign:
            raise AtKey(
                (foreign[0],),
                f"a {self.kind} check has no key {foreign[0]!r} "
                f"(its keys: {', '.join(sorted(CHECK_KEYS[self.kind] | {'threshold'}))})",
            )
        if self.kind == "scorer" and not self.path:
            raise ValueError("a scorer check needs `path` (see `smallfirst cascade train-scorer`)")
        if self.kind == "judge" and not self.model:
            raise ValueError("a judge check needs `model`: the model that judges the answer")
        return self


CHECK_KEYS: dict[str, set[str]] = {
    "logprob": set(),
    "agreement": {"samples", "temperature"},
    "constraint": {"labels", "json_schema", "allow_refusal"},
    "scorer": {"path"},
    "judge": {"model"},
}
"""The keys each check kind reads besides `kind` and `threshold`; any other is refused."""


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


TaskKind = Literal["code", "math", "summarize", "translate", "extract", "classify", "chat"]


class RuleConfig(Strict):
    """One rule of a `rules` router: every condition given must hold; then `model` answers."""

    model: str = Field(min_length=1)
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)
    task: TaskKind | list[TaskKind] | None = None
    keywords: list[str] | None = None
    regex: str | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return regex


class RulesRouterConfig(Strict):
    """PII to a `local` model first, then the rules in order, then `default`."""

    kind: Literal["rules"]
    rules: list[RuleConfig] = Field(default_factory=list)
    local_model: str | None = None
    """Where personal data goes; must be declared `local`. Default: the default model when it
    is local, else the first local model by tier."""
    pii_to_local: bool = True
    """false: personal data is routed like anything else (it may reach a cloud model)."""
    default: str | None = None
    """A model, or another entry under `routers:`; default: the default model."""


class RatingRouterConfig(Strict):
    """The embedded model rates difficulty 1-5; from `threshold` up the large model answers."""

    kind: Literal["rating"]
    rater: str | None = None
    """An `embedded` model; default: the first one by tier."""
    small: str | None = None
    large: str | None = None
    threshold: float = Field(default=3.0, ge=1, le=5)
    """The difficulty (1-5) at and above which `large` answers."""


LEARNED_KINDS = ("knn", "linear", "mlp", "learned")


class LearnedRouterConfig(Strict):
    """A trained router file. Its threshold is the calibrated one, or recalibrated here on
    `calibrate_on` prompts to `large_share` or `quality_target`; `threshold` overrides both."""

    kind: Literal["knn", "linear", "mlp", "learned"]
    path: str = Field(min_length=1)
    """The router file from `smallfirst router train`."""
    models: dict[str, str] = Field(default_factory=dict)
    """Outcome model names in the file -> configured model names."""
    large_share: float | None = Field(default=None, gt=0, lt=1)
    """About this share of `calibrate_on` prompts goes to the top-price model(s)."""
    quality_target: float | None = Field(default=None, gt=0, le=1)
    """The cheapest routing keeping predicted quality >= this x the best single model's."""
    calibrate_on: str | None = None
    """Prompt file (.jsonl, .csv, .txt) that `large_share` / `quality_target` are met on."""
    threshold: float | None = None
    """Raw override of the price of quality (the `0.3` in `router-knn-0.3`)."""

    @model_validator(mode="after")
    def _one_target(self) -> LearnedRouterConfig:
        given = [
            k
            for k in ("large_share", "quality_target", "threshold")
            if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one of large_share, quality_target, threshold, not {given}")
        if given and given != ["threshold"] and not self.calibrate_on:
            raise ValueError(
                "large_share / quality_target need `calibrate_on`: a file of your prompts"
            )
        return self


class PluginRouterConfig(BaseModel):
    """A kind added with `smallfirst.routing.register_router_kind`: its keys are its own."""

    model_config = ConfigDict(extra="allow")
    kind: str

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


BUILTIN_ROUTER_KINDS = ("rules", "rating", *LEARNED_KINDS)
PLUGIN_ROUTER_KINDS: set[str] = set()
"""Filled by `register_router_kind`, so a plugin's kind is accepted when the config loads."""


def _router_tag(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    if kind in LEARNED_KINDS:
        return "learned"
    if kind in ("rules", "rating"):
        return kind
    return "plugin" if kind in PLUGIN_ROUTER_KINDS else kind


ROUTER_TAGS = ("rules", "rating", "learned", "plugin")
RouterConfig = Annotated[
    Annotated[RulesRouterConfig, Tag("rules")]
    | Annotated[RatingRouterConfig, Tag("rating")]
    | Annotated[LearnedRouterConfig, Tag("learned")]
    | Annotated[PluginRouterConfig, Tag("plugin")],
    Discriminator(_router_tag),
]


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


class CacheRouteConfig(Strict):
    """The response cache for one route (a request's `model`: a model, router or cascade)."""

    exact: bool = True
    semantic: bool = False
    always: bool = False
    """Cache non-deterministic requests too (by default only temperature 0 or a seed)."""
    shared: bool = False
    """Entries shared by every key (default: each key its own; `local` models never share)."""
    ttl_s: float = Field(default=3600, gt=0)
    max_entries: int = Field(default=10_000, ge=1)
    threshold: float | None = Field(default=None, gt=0, le=1)
    """Semantic similarity needed for a hit; None: the calibrated one (`cache calibrate`)."""
    ambiguity_margin: float | None = Field(default=None, ge=0, lt=1)
    """A semantic hit also needs the entries within this similarity of the nearest to hold
    the nearest's answer (else the lookup is ambiguous: a miss); None: the margin calibrated
    with the threshold (`cache calibrate` on a labelled stream), no check without one."""
    target_precision: float = Field(default=0.99, gt=0, lt=1)
    audit_rate: float = Field(default=0.05, ge=0, le=1)
    """Share of semantic hits answered fresh off the response path to check the threshold."""
    template: list[str] = Field(default_factory=list)
    """Fixed openings or endings of the last user turn, stripped before embedding."""


class CacheConfig(Strict):
    routes: dict[str, CacheRouteConfig] = Field(default_factory=dict)
    """Route (the request's `model`, or `*` for every route) -> its cache; none: no cache."""
    embedder_path: str | None = None
    """A model2vec static model folder (default: the one routers distill from MiniLM)."""


class TaskLearnConfig(Strict):
    """`learn.tasks.<name>`: one task's own settings; an unset field keeps the `learn:` one.
    Tasks differ in what a wrong answer costs (a routing intent against a refund amount), so
    a team sets a stricter target, or more evidence, where a mistake hurts more."""

    target: float | None = Field(default=None, gt=0, lt=1)
    min_evidence: int | None = Field(default=None, ge=1)
    shadow_rate: float | None = Field(default=None, ge=0, le=1)
    audit_rate: float | None = Field(default=None, ge=0, le=1)


class LearnConfig(Strict):
    """`learn:` — `auto` learns per task from the traffic it serves (smallfirst/learning/).
    Present (even as `learn: {}`): `model: "auto"` serves each task by its learned policy, on
    the baseline model until evidence proves a cheaper one, and shadows a share of traffic."""

    auto: bool = False
    """Run `smallfirst learn` in the gateway every `interval_s` (else only from the CLI)."""
    interval_s: float = Field(default=300, gt=0)
    reload_s: float = Field(default=10, gt=0)
    """How often a replica reads the current policies from the shared database."""
    target: float = Field(default=0.95, gt=0, lt=1)
    """Agreement with the large model a cheaper policy must prove (its lower bound)."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """Level of the one-sided lower bound the target is checked against."""
    min_evidence: int = Field(default=100, ge=1)
    """Comparisons a task needs before a cheaper policy is considered."""
    shadow_rate: float = Field(default=0.2, ge=0, le=1)
    """Share of a task's traffic answered by the other tier too, while it is on the large one."""
    audit_rate: float = Field(default=0.05, ge=0, le=1)
    """Share of a promoted task's traffic also asked of the large model, to catch a drop."""
    budget_usd_per_day: float = Field(default=1.0, ge=0)
    """Shadow and judge spend per UTC day over all tasks; at zero, no shadow calls."""
    small_model: str | None = None
    """The model shadowed as `small` (default: the cheapest non-tiny model)."""
    large_model: str | None = None
    """The reference (default: `baseline_model`)."""
    judge_model: str | None = None
    """Judges free-text answers pairwise; without one, free text is never moved down."""
    artifacts_dir: str | None = None
    """Where learned students and example banks are written (default: beside the ledger)."""
    tasks: dict[str, TaskLearnConfig] = Field(default_factory=dict)
    """Task name -> settings that differ from the ones above for that task alone."""

    def for_task(self, task: str) -> LearnConfig:
        """These settings with `task`'s own overrides applied (itself when it has none)."""
        own = self.tasks.get(task)
        if own is None:
            return self
        return self.model_copy(update=own.model_dump(exclude_none=True))


class Config(Strict):
    models: list[ModelConfig] = Field(default_factory=list)
    default_model: str | None = None
    """Model used for `model: "default"`; default the first small-tier model."""
    baseline_model: str | None = None
    """The always-large model savings are measured against; default the priciest model."""
    server: ServerConfig = Field(default_factory=ServerConfig)
    routers: dict[str, RouterConfig] = Field(default_factory=dict)
    """Router name -> its config, one type per `kind` (`auto` answers `model: "auto"`)."""
    cascades: dict[str, CascadeConfig] = Field(default_factory=dict)
    failover: FailoverConfig = Field(default_factory=FailoverConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    pipelines: dict[str, str] = Field(default_factory=dict)
    """Pipeline name -> pipeline YAML path (for `/v1/pipelines/{name}` and the CLI)."""
    tasks: dict[str, str] = Field(default_factory=dict)
    """Task name -> task spec YAML path (for `POST /v1/tasks/{name}` and `smallfirst run`)."""
    learn: LearnConfig | None = None
    """Learning from traffic for `model: "auto"`; None (absent): `auto` is a plain router."""

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
            refs: list[tuple[tuple[str | int, ...], str | None]]
            refs = [(("rungs", i), rung) for i, rung in enumerate(cascade.rungs)]
            refs += [(("checks", i, "model"), c.model) for i, c in enumerate(cascade.checks)]
            for loc, ref in refs:
                if ref is not None and ref not in names and ref not in TIERS:
                    raise AtKey(
                        ("cascades", cascade_name, *loc),
                        f"cascade {cascade_name!r}: {ref!r} is neither a model "
                        f"({sorted(names)}) nor a tier ({', '.join(TIERS)})",
                    )
        return self

    @model_validator(mode="after")
    def _router_refs(self) -> Config:
        names = {m.name for m in self.models}
        for router_name, router in self.routers.items():
            for loc, ref in _model_refs(router):
                is_default = loc == ("default",)
                if ref not in names and not (is_default and ref in self.routers):
                    raise AtKey(
                        ("routers", router_name, *loc),
                        f"{ref!r} is not a configured model{' nor a router' if is_default else ''}"
                        f" (models: {', '.join(sorted(names))})",
                    )
            if isinstance(router, RulesRouterConfig) and router.local_model:
                _check_local(router_name, router.local_model, self.models)
        for cascade_name, cascade in self.cascades.items():
            via = cascade.router  # the router that picks the first rung
            if via and via != "auto" and via not in self.routers and not via.startswith("router-"):
                raise AtKey(
                    ("cascades", cascade_name, "router"),
                    f"{via!r} is neither `auto`, a `router-<kind>` name nor one of the routers: "
                    f"{sorted(self.routers)}",
                )
        return self


class AtKey(ValueError):
    """A check across keys that failed at one of them: the error names that key (relative
    to the model whose validator raised it) and its line."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _model_refs(router: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(location in the router's config, model name) for each model the router names."""
    if isinstance(router, RulesRouterConfig):
        refs: list[tuple[tuple[str | int, ...], str]]
        refs = [(("rules", i, "model"), r.model) for i, r in enumerate(router.rules)]
        refs += [((k,), v) for k in ("local_model", "default") if (v := getattr(router, k))]
        return refs
    if isinstance(router, RatingRouterConfig):
        return [((k,), v) for k in ("rater", "small", "large") if (v := getattr(router, k))]
    return []


def _check_local(router_name: str, model_name: str, models: list[ModelConfig]) -> None:
    """Personal data may go only to a model declared (or known by its backend to be) local."""
    from smallfirst.models.capabilities import capabilities_of  # it imports this module

    model = next(m for m in models if m.name == model_name)
    if not capabilities_of(model).local:
        raise AtKey(
            ("routers", router_name, "local_model"),
            f"model {model_name!r} is not declared local, so personal data would leave this "
            "network; if it is self-hosted, add `capabilities: {local: true}` to it",
        )


def embedded_model() -> ModelConfig:
    return ModelConfig(
        name=EMBEDDED_MODEL_NAME,
        backend="llamacpp",
        tier="small",
        context=2048,
        prompt_style="completion",
    )


def state_dir() -> Path:
    """Where ledgers, keys and caches live: $SMALLFIRST_HOME or ./.smallfirst. Only the path:
    whatever stores something there creates the folders it needs, so that importing smallfirst
    or building a Registry, Gateway or app writes nothing."""
    return Path(os.environ.get("SMALLFIRST_HOME", ".smallfirst"))


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
        if model.adapter:
            model.adapter = _beside(model.adapter, base)
        for key in MODEL_PATH_OPTIONS:
            value = model.options.get(key)
            if isinstance(value, str) and value:
                model.options[key] = _beside(value, base)


def _beside(path: str, base: Path) -> str:
    """A relative file path, relative to the config file; an address (`hf://...`) as is, so
    the backend can refuse it by name instead of looking for a local file of that name."""
    if "://" in path or path.startswith("huggingface.co/"):
        return path
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
        if len(loc) > 2 and loc[0] == "routers" and loc[2] in ROUTER_TAGS:
            del loc[2]  # the union's tag, not a key in the file
        message = error["msg"].removeprefix("Value error, ")
        at_key = error.get("ctx", {}).get("error")
        if isinstance(at_key, AtKey):  # relative to where the failing validator ran
            loc += list(at_key.loc)
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("kind")
            message = _kind_message(error.get("ctx", {}).get("tag"))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(root, loc)
        where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {key}: {message}")
    return "invalid config\n  " + "\n  ".join(lines)


def _kind_message(tag: str | None) -> str:
    known = ", ".join((*BUILTIN_ROUTER_KINDS, *sorted(PLUGIN_ROUTER_KINDS)))
    if not tag:
        return f"a router needs a `kind`: one of {known}"
    return f"unknown router kind {tag!r}; known: {known}"


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
