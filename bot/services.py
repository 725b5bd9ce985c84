"""The backends a command may use, built once from the settings."""

import asyncio
from dataclasses import dataclass, field

from bot.config import Settings
from bot.sources.cloudwatch import CloudWatchMetrics
from bot.sources.gateway import GatewayEvents, TinybirdGateway
from bot.sources.provider import ProviderMetrics
from bot.sources.tinybird import TinybirdClient
from bot.store import Store


@dataclass
class Services:
    """What the front ends hand to every command."""

    settings: Settings
    providers: dict[str, ProviderMetrics] = field(default_factory=dict)
    # None when the settings do not say how to reach the event store.
    gateway: GatewayEvents | None = None
    _store: Store | None = None
    _store_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def store(self) -> Store:
        """The database, opened (and its tables created) on first use."""
        async with self._store_lock:
            if self._store is None:
                self._store = await Store.open(self.settings.database_url)
            return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None


def build_services(
    settings: Settings, providers: dict[str, ProviderMetrics] | None = None
) -> Services:
    """Connect the sources the settings describe; clients open lazily."""
    gateway = None
    if settings.tb_token is not None:
        gateway = TinybirdGateway(
            TinybirdClient.from_settings(settings), settings.coverage.environment
        )
    return Services(
        settings=settings,
        providers=providers or {"bedrock": CloudWatchMetrics(settings)},
        gateway=gateway,
    )
