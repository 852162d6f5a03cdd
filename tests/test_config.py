import pytest

from smallfirst.config import EMBEDDED_MODEL_NAME, load_config, parse_config
from smallfirst.errors import ConfigError, ModelNotFoundError
from smallfirst.models.pricing import price_of
from smallfirst.models.registry import Registry

GOOD = """
baseline_model: gpt-4o
models:
  - name: gemma
    backend: llamacpp
    tier: small
  - name: local-8b
    backend: openai
    base_url: http://127.0.0.1:8000/v1
    tier: medium
    hourly_usd: 2.0
    tokens_per_second: 500
  - name: gpt-4o
    backend: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    tier: large
"""


def test_no_file_means_embedded_model_only():
    config = load_config()
    assert [m.name for m in config.models] == [EMBEDDED_MODEL_NAME]
    registry = Registry(config)
    assert registry.default_model == EMBEDDED_MODEL_NAME


def test_good_file_builds_registry_with_prices():
    registry = Registry(parse_config(GOOD))
    assert registry.default_model == "gemma"
    assert registry.baseline_model == "gpt-4o"
    assert [e.name for e in registry.by_tier()] == ["gemma", "local-8b", "gpt-4o"]
    gpt = registry.get("gpt-4o").price
    assert (
        gpt.source == "genai-prices"
        and gpt.input_per_mtok > 0
        and gpt.output_per_mtok > gpt.input_per_mtok
    )
    local = registry.get("local-8b").price
    assert local.source == "hourly"
    assert local.output_per_mtok == pytest.approx(2.0 / (500 * 3600) * 1e6)


def test_unknown_key_is_named_with_its_line():
    text = "models:\n  - name: a\n    backend: llamacpp\n    teir: small\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="smallfirst.yaml")
    assert "smallfirst.yaml:4" in caught.value.message
    assert "unknown key 'teir'" in caught.value.message


def test_bad_value_is_named_with_its_line():
    text = "models:\n  - name: a\n    backend: llamacpp\n    tier: huge\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cfg.yaml")
    assert "cfg.yaml:4: models.0.tier" in caught.value.message


def test_openai_without_base_url_is_explained():
    with pytest.raises(ConfigError, match="needs base_url"):
        parse_config("models:\n  - name: x\n    backend: openai\n")


def test_duplicate_names_and_unknown_baseline():
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(
            "models:\n  - {name: a, backend: llamacpp}\n  - {name: a, backend: llamacpp}\n"
        )
    with pytest.raises(ConfigError, match="baseline_model 'zzz'"):
        parse_config("baseline_model: zzz\nmodels:\n  - {name: a, backend: llamacpp}\n")


def test_not_yaml_and_not_a_mapping():
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("models: [unclosed")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("- just\n- a list\n")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_model_is_404_with_the_list():
    with pytest.raises(ModelNotFoundError) as caught:
        Registry().get("gpt-9")
    assert caught.value.status == 404 and EMBEDDED_MODEL_NAME in caught.value.message


def test_explicit_price_wins():
    config = parse_config(
        "models:\n  - {name: a, backend: llamacpp, price: {input: 1, output: 2}}\n"
    )
    price = price_of(config.models[0])
    assert (price.input_per_mtok, price.output_per_mtok, price.source) == (1, 2, "config")


def test_relative_model_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "outcomes.csv").write_text("prompt,label\nhi,ham\n")
    (folder / "smallfirst.yaml").write_text(
        """
models:
  - name: student
    backend: student
    tier: tiny
    options: {path: students/intents.joblib}
  - name: replayed
    backend: replay
    options: {outcomes: data/outcomes.csv}
  - name: gguf
    backend: llamacpp
    path: /models/absolute.gguf
"""
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config("../project/smallfirst.yaml")
    models = {m.name: m for m in config.models}
    assert models["student"].options["path"] == str(folder / "students" / "intents.joblib")
    assert models["replayed"].options["outcomes"] == str(folder / "data" / "outcomes.csv")
    assert models["gguf"].path == "/models/absolute.gguf"
    registry = Registry(config)
    assert registry.provider("replayed").book is not None  # the CSV was found from elsewhere


ROUTER_MODELS = """models:
  - {name: gemma, backend: llamacpp}
  - {name: gpt-4o, backend: openai, base_url: https://api.openai.com/v1, tier: large}
routers:
"""


@pytest.mark.parametrize(
    ("routers", "where"),
    [
        (
            "  auto:\n    kind: rulez\n",
            "x.yaml:6: routers.auto.kind: unknown router kind 'rulez'; known: rules, rating, knn",
        ),
        ("  auto:\n    default: gemma\n", "x.yaml:5: routers.auto.kind: a router needs a `kind`"),
        ("  auto:\n    kind: knn\n", "x.yaml:5: routers.auto.path: Field required"),
        (
            "  auto:\n    kind: rules\n    pii_to_locale: false\n",
            "x.yaml:7: routers.auto.pii_to_locale: unknown key",
        ),
        (
            "  auto:\n    kind: rules\n    default: gpt-5\n",
            "x.yaml:7: routers.auto.default: 'gpt-5' is not a configured model nor a router",
        ),
        (
            "  hard:\n    kind: rating\n    threshold: 7\n",
            "x.yaml:7: routers.hard.threshold: Input should be less than or equal to 5",
        ),
        (
            "  auto:\n    kind: knn\n    path: r.json\n    large_share: 0.2\n",
            "x.yaml:5: routers.auto: large_share / quality_target need `calibrate_on`",
        ),
        (
            "  auto:\n    kind: knn\n    path: r.json\n    large_share: 1.5\n",
            "x.yaml:8: routers.auto.large_share: Input should be less than 1",
        ),
        (
            "  auto: {kind: knn, path: r.json, threshold: 0.2, quality_target: 0.9,"
            " calibrate_on: p.txt}\n",
            "give one of large_share, quality_target, threshold",
        ),
    ],
)
def test_typed_router_config_fails_at_load_with_file_line_and_key(routers, where):
    with pytest.raises(ConfigError) as err:
        parse_config(ROUTER_MODELS + routers, source="x.yaml")
    assert where in str(err.value)


def test_router_config_with_meaningful_targets_loads():
    config = parse_config(
        ROUTER_MODELS
        + "  auto: {kind: knn, path: r.json, large_share: 0.2, calibrate_on: prompts.txt}\n"
        + "  guard: {kind: rules, rules: [{task: [code, math], model: gpt-4o}], default: auto}\n"
    )
    assert config.routers["auto"].large_share == 0.2
    assert config.routers["guard"].rules[0].task == ["code", "math"]


def test_cascade_router_typo_fails_at_load():
    text = (
        ROUTER_MODELS
        + "  auto: {kind: rules}\ncascades:\n  c:\n    rungs: [gemma]\n    router: atuo\n"
    )
    with pytest.raises(ConfigError, match=r"x\.yaml:9: cascades\.c\.router: 'atuo'"):
        parse_config(text, source="x.yaml")


def test_a_registered_router_kind_is_accepted_at_load(monkeypatch, request):
    from smallfirst.config import PLUGIN_ROUTER_KINDS
    from smallfirst.routing import base

    base._load_builtin_kinds()  # registered into the real table, which the copy then restores
    monkeypatch.setattr(base, "ROUTER_KINDS", dict(base.ROUTER_KINDS))
    request.addfinalizer(lambda: PLUGIN_ROUTER_KINDS.discard("coin"))
    with pytest.raises(ConfigError, match="unknown router kind 'coin'"):
        parse_config(ROUTER_MODELS + "  auto: {kind: coin, bias: 0.5}\n")

    class Coin:
        def __init__(self, name, registry, bias):
            self.name, self.model, self.bias = name, registry.default_model, bias

    base.register_router_kind(
        "coin", lambda name, _t, reg: Coin(name, reg, reg.config.routers["auto"].get("bias"))
    )
    registry = Registry(parse_config(ROUTER_MODELS + "  auto: {kind: coin, bias: 0.5}\n"))
    router = base.resolve_router("auto", registry)
    assert isinstance(router, Coin) and router.bias == 0.5


def test_a_check_key_of_another_kind_is_named_with_its_line():
    text = (
        "models:\n  - {name: gemma, backend: llamacpp}\n"
        "cascades:\n  c:\n    rungs: [gemma]\n    checks:\n"
        "      - {kind: constraint, labels: [a, b]}\n"
        "      - kind: judge\n        model: gemma\n        samples: 5\n"
    )
    with pytest.raises(ConfigError, match=r"x\.yaml:10: cascades\.c\.checks\.1\.samples: a judge"):
        parse_config(text, source="x.yaml")


def test_option_paths_resolve_beside_the_config_and_addresses_stay_addresses(tmp_path) -> None:
    from smallfirst.config import resolve_model_paths
    from smallfirst.errors import ModelLoadError
    from smallfirst.models.llamacpp import resolve_model_path

    config = parse_config(
        "models:\n"
        "  - {name: a, backend: llamacpp, path: 'hf://org/model.gguf'}\n"
        "  - {name: b, backend: replay, options: {outcomes: o.csv}}\n"
    )
    resolve_model_paths(config, tmp_path)
    assert config.models[1].options["outcomes"] == str(tmp_path / "o.csv")  # no adapter needed
    with pytest.raises(ModelLoadError, match="download address"):
        resolve_model_path(config.models[0])
