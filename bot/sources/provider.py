"""The protocol every provider's metrics collector follows (Bedrock now, Azure next)."""

from typing import Protocol

from bot.sources.records import PeriodCounts
from bot.windows import Window


class ProviderMetrics(Protocol):
    """What the provider billed, per model ID and period."""

    name: str

    async def active_model_ids(self, window: Window) -> list[str]:
        """Model IDs that reported any metric in or near the window."""
        ...

    async def usage(self, window: Window, model_ids: list[str]) -> list[PeriodCounts]:
        """Invocations, tokens and throttles per model ID and period."""
        ...
