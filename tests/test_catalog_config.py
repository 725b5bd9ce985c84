"""The model catalog and the settings: defaults, aliases, TOML overrides."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.catalog import Catalog, Tier
from bot.config import Settings, load_settings
from bot.errors import ConfigError, InputError


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("opus", "claude-large"),
        ("Claude-Opus-4.5", "claude-large"),
        ("sonnet", "claude"),
        ("haiku-3.5", "chickytutor"),
        ("amazon.nova-micro-v1:0", "nova-fast"),
        ("opus-4.1", "opus-4.1"),
    ],
    ids=["alias", "alias-any-case", "sonnet", "special", "provider-id", "legacy"],
)
def test_resolve_by_name_alias_or_id(typed: str, name: str) -> None:
    assert Catalog().resolve(typed).name == name


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as caught:
        Catalog().resolve("opus'; DROP TABLE x --")

    assert str(caught.value) == (
        "model must be one of: all, nova-fast, nova-lite, claude-large, claude, "
        "claude-fast, chickytutor, opus-4.1; got 22 characters (not repeated: it "
        "may be a secret)"
    )


def test_default_prices_and_baselines() -> None:
    opus = Catalog().resolve("opus")

    assert opus.provider_model_ids == ["global.anthropic.claude-opus-4-5-20251101-v1:0"]
    assert opus.tier is Tier.PAID
    assert opus.cost_usd(1_000_000, 100_000) == pytest.approx(7.5)
    assert opus.baseline is not None and opus.baseline.input_tokens == 0.18


@pytest.mark.parametrize(
    ("name", "aliases", "model_id", "tier", "prices", "baseline"),
    [
        ("nova-fast", ["nova", "nova-micro"], "amazon.nova-micro-v1:0",
         Tier.FREE, (0.035, 0.14), (1.0, 1.0)),
        ("nova-lite", [], "amazon.nova-lite-v1:0", Tier.FREE, (0.06, 0.24), None),
        ("claude-large", ["opus", "claude-opus", "claude-opus-4.5"],
         "global.anthropic.claude-opus-4-5-20251101-v1:0",
         Tier.PAID, (5.0, 25.0), (0.35, 0.18)),
        ("claude", ["sonnet", "claude-sonnet"],
         "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
         Tier.PAID, (3.30, 16.50), (0.64, 0.48)),
        ("claude-fast", ["haiku", "claude-haiku"],
         "us.anthropic.claude-haiku-4-5-20251001-v1:0",
         Tier.PAID, (1.10, 5.50), (0.70, 0.96)),
        ("chickytutor", ["haiku-3.5"], "us.anthropic.claude-3-5-haiku-20241022-v1:0",
         Tier.SPECIAL, (0.80, 4.0), None),
        ("opus-4.1", [], "us.anthropic.claude-opus-4-1-20250805-v1:0",
         Tier.LEGACY, (15.0, 75.0), None),
    ],
    ids=["nova-fast", "nova-lite", "claude-large", "claude", "claude-fast",
         "chickytutor", "opus-4.1"],
)  # fmt: skip
def test_the_built_in_catalog_is_the_issues_table(
    name: str,
    aliases: list[str],
    model_id: str,
    tier: Tier,
    prices: tuple[float, float],
    baseline: tuple[float, float] | None,
) -> None:
    """Every default row: names, Bedrock model ID, tier, $/1M tokens, baseline."""
    spec = Catalog().resolve(model_id)

    assert (spec.name, spec.aliases, spec.provider) == (name, aliases, "bedrock")
    assert (spec.provider_model_ids, spec.tier) == ([model_id], tier)
    assert (spec.input_usd_per_mtok, spec.output_usd_per_mtok) == prices
    got = spec.baseline and (spec.baseline.invocations, spec.baseline.input_tokens)
    assert got == baseline
    assert len(Catalog().models) == 7


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment names are part of the interface; secrets stay masked."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    monkeypatch.setenv("BOT_ADMINS", "U1, U2,,U3")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("PORT", "8080")

    settings = load_settings()

    assert settings.bot_admins == ["U1", "U2", "U3"]
    assert settings.aws_region == "eu-central-1"
    assert settings.port == 8080
    assert "xoxb-secret" not in repr(settings)
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-secret"


def test_toml_overrides_catalog_and_thresholds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bot.toml"
    config.write_text(
        """
[coverage]
unauthorized_below = 0.4

[[models]]
name = "gpt-large"
aliases = ["gpt"]
provider = "azure-openai"
provider_model_ids = ["gpt-5"]
tier = "paid"
input_usd_per_mtok = 1.25
output_usd_per_mtok = 10
"""
    )
    monkeypatch.setenv("BOT_CONFIG", str(config))

    settings = load_settings()

    assert [m.name for m in settings.catalog.models] == ["gpt-large"]
    assert settings.catalog.resolve("gpt").provider == "azure-openai"
    assert settings.coverage.unauthorized_below == 0.4


def test_broken_toml_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bot.toml"
    config.write_text("[[models]\n")
    monkeypatch.setenv("BOT_CONFIG", str(config))

    with pytest.raises(ConfigError, match=r"^BOT_CONFIG .*bot\.toml: "):
        load_settings()


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "CEST", ""], ids=str)
def test_an_unknown_time_zone_fails_at_start(zone: str) -> None:
    """TIMEZONE is checked when the settings are read, not when a chart is drawn."""
    with pytest.raises(ValidationError) as caught:
        Settings(timezone=zone)

    assert (
        f"TIMEZONE must be an IANA name such as Europe/Berlin or UTC; got {zone!r}"
        in str(caught.value)
    )
