"""The backends a command may use, built once from the settings."""

from dataclasses import dataclass, field

from bot.config import Settings
from bot.sources.cloudwatch import CloudWatchMetrics
from bot.sources.provider import ProviderMetrics


@dataclass
class Services:
    """What the front ends hand to every command."""

    settings: Settings
    providers: dict[str, ProviderMetrics] = field(default_factory=dict)

    def provider(self, name: str) -> ProviderMetrics | None:
        return self.providers.get(name)


def build_services(
    settings: Settings, providers: dict[str, ProviderMetrics] | None = None
) -> Services:
    """Connect the sources the settings describe; clients open lazily."""
    return Services(
        settings=settings,
        providers=providers or {"bedrock": CloudWatchMetrics(settings)},
    )
