"""The model catalog: our names, aliases, provider model IDs, prices and baselines.

Prices and baselines are data: the defaults below can be replaced wholesale from the
TOML file named by `BOT_CONFIG`. A provider other than Bedrock (Azure OpenAI) joins by
adding entries with its own `provider`; no command looks at the provider's name.
"""

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from bot.errors import InputError, echo


class Tier(StrEnum):
    FREE = "free"
    PAID = "paid"
    SPECIAL = "special"
    LEGACY = "legacy"


class Baseline(BaseModel):
    """The coverage the gateway normally reaches for a model (gateway / provider)."""

    invocations: float = Field(ge=0)
    input_tokens: float = Field(ge=0)


class ModelSpec(BaseModel):
    """One model as the provider bills it and as the gateway names it."""

    name: str
    aliases: list[str] = []
    provider: str = "bedrock"
    provider_model_ids: list[str] = Field(min_length=1)
    tier: Tier
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    baseline: Baseline | None = None

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """What the provider bills for these tokens at the catalog's list prices."""
        return (
            input_tokens * self.input_usd_per_mtok
            + output_tokens * self.output_usd_per_mtok
        ) / 1_000_000


def _spec(
    name: str,
    aliases: list[str],
    model_id: str,
    tier: Tier,
    prices: tuple[float, float],
    baseline: tuple[float, float] | None = None,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        aliases=aliases,
        provider_model_ids=[model_id],
        tier=tier,
        input_usd_per_mtok=prices[0],
        output_usd_per_mtok=prices[1],
        baseline=Baseline(invocations=baseline[0], input_tokens=baseline[1])
        if baseline
        else None,
    )


DEFAULT_MODELS = [
    _spec("nova-fast", ["nova", "nova-micro"], "amazon.nova-micro-v1:0",
          Tier.FREE, (0.035, 0.14), (1.0, 1.0)),
    _spec("nova-lite", [], "amazon.nova-lite-v1:0", Tier.FREE, (0.06, 0.24)),
    _spec("claude-large", ["opus", "claude-opus", "claude-opus-4.5"],
          "global.anthropic.claude-opus-4-5-20251101-v1:0",
          Tier.PAID, (5.0, 25.0), (0.35, 0.18)),
    _spec("claude", ["sonnet", "claude-sonnet"],
          "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
          Tier.PAID, (3.30, 16.50), (0.64, 0.48)),
    _spec("claude-fast", ["haiku", "claude-haiku"],
          "us.anthropic.claude-haiku-4-5-20251001-v1:0",
          Tier.PAID, (1.10, 5.50), (0.70, 0.96)),
    _spec("chickytutor", ["haiku-3.5"],
          "us.anthropic.claude-3-5-haiku-20241022-v1:0",
          Tier.SPECIAL, (0.80, 4.0)),
    _spec("opus-4.1", [], "us.anthropic.claude-opus-4-1-20250805-v1:0",
          Tier.LEGACY, (15.0, 75.0)),
]  # fmt: skip


class Catalog(BaseModel):
    """All models the bot knows, with lookups by name, alias and provider model ID."""

    models: list[ModelSpec] = Field(default_factory=lambda: list(DEFAULT_MODELS))

    @model_validator(mode="after")
    def _names_are_unique(self) -> "Catalog":
        seen: dict[str, str] = {}
        for spec in self.models:
            for key in [spec.name, *spec.aliases]:
                other = seen.setdefault(key.lower(), spec.name)
                if other != spec.name:
                    raise ValueError(f"{key!r} names both {other} and {spec.name}")
        return self

    def resolve(self, text: str) -> ModelSpec:
        """The model a person meant; `InputError` listing the known names otherwise."""
        wanted = text.strip().lower()
        for spec in self.models:
            if wanted in (n.lower() for n in [spec.name, *spec.aliases]):
                return spec
            if wanted in (i.lower() for i in spec.provider_model_ids):
                return spec
        names = ", ".join(spec.name for spec in self.models)
        raise InputError(f"model must be one of: all, {names}; got {echo(text)}")

    def by_provider_id(self, provider: str, model_id: str) -> ModelSpec | None:
        for spec in self.models:
            if spec.provider == provider and model_id in spec.provider_model_ids:
                return spec
        return None

    def for_provider(self, provider: str) -> list[ModelSpec]:
        return [spec for spec in self.models if spec.provider == provider]

    def provider_ids(self, specs: Iterable[ModelSpec]) -> list[str]:
        return [model_id for spec in specs for model_id in spec.provider_model_ids]
