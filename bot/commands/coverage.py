"""`/coverage`: provider against gateway, per model and per period."""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from bot.analysis.coverage import CoverageReport, compare
from bot.catalog import ModelSpec
from bot.commands.args import parse_model_window
from bot.config import Settings
from bot.errors import SourceError
from bot.services import Services
from bot.sources.provider import ProviderMetrics
from bot.sources.records import PeriodCounts, SourceFailure
from bot.windows import DEFAULT_WINDOW, Window


@dataclass(frozen=True)
class CoverageRequest:
    spec: ModelSpec | None
    window: Window
    provider: str


def parse_coverage(
    text: str, settings: Settings, now: datetime | None = None
) -> CoverageRequest:
    """Validate `[MODEL|all] [WINDOW]` before any backend is asked anything."""
    parsed = parse_model_window(
        text, settings.catalog, default_window=DEFAULT_WINDOW, now=now
    )
    provider = parsed.spec.provider if parsed.spec else "bedrock"
    return CoverageRequest(parsed.spec, parsed.window, provider)


async def run_coverage(request: CoverageRequest, services: Services) -> CoverageReport:
    """Both sides at once, so the answer costs the slower side's time, not the sum."""
    catalog = services.settings.catalog
    specs = [request.spec] if request.spec else catalog.for_provider(request.provider)
    model_ids = catalog.provider_ids(specs)
    failures: list[SourceFailure] = []

    provider = services.providers.get(request.provider)
    billed, logged = await asyncio.gather(
        _billed(provider, request, model_ids, failures),
        _logged(services, request.window, model_ids, failures),
    )
    discovered = sorted({p.model_id for p in billed or []} - set(model_ids))

    report = compare(
        request.window,
        request.provider,
        catalog,
        model_ids + discovered,
        billed,
        logged,
        services.settings.coverage,
    )
    report.errors = list(dict.fromkeys(failures))
    return report


async def _billed(
    provider: ProviderMetrics | None,
    request: CoverageRequest,
    model_ids: list[str],
    failures: list[SourceFailure],
) -> list[PeriodCounts] | None:
    if provider is None:
        failures.append(SourceFailure(request.provider, "provider is not configured"))
        return None

    ids = list(model_ids)
    if request.spec is None:
        try:
            active = await provider.active_model_ids(request.window)
            ids += [model_id for model_id in active if model_id not in ids]
        except SourceError as exc:
            failures.append(SourceFailure(exc.source, exc.message))
    try:
        return await provider.usage(request.window, ids)
    except SourceError as exc:
        failures.append(SourceFailure(exc.source, exc.message))
        return None


async def _logged(
    services: Services,
    window: Window,
    model_ids: list[str],
    failures: list[SourceFailure],
) -> list[PeriodCounts] | None:
    if services.gateway is None:
        failures.append(SourceFailure("tinybird", "TB_TOKEN is not set"))
        return None
    try:
        return await services.gateway.usage(window, model_ids)
    except SourceError as exc:
        failures.append(SourceFailure(exc.source, exc.message))
        return None
