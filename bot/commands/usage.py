"""`/usage`: per-model invocations, tokens, throttles and cost from the provider."""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from bot.analysis.usage import UsageReport, summarize_usage
from bot.catalog import ModelSpec
from bot.commands.args import parse_model_window
from bot.config import Settings
from bot.errors import SourceError
from bot.services import Services
from bot.sources.provider import ProviderMetrics
from bot.sources.records import PeriodCounts, SourceFailure
from bot.windows import DEFAULT_WINDOW, Window


@dataclass(frozen=True)
class UsageRequest:
    spec: ModelSpec | None
    window: Window
    hourly: bool

    @property
    def wants_chart(self) -> bool:
        return self.spec is not None or self.hourly


def parse_usage(
    text: str, settings: Settings, now: datetime | None = None
) -> UsageRequest:
    """Validate the arguments before any backend is asked anything."""
    parsed = parse_model_window(
        text,
        settings.catalog,
        default_window=DEFAULT_WINDOW,
        flags=frozenset({"hourly", "--hourly"}),
        now=now,
    )
    return UsageRequest(parsed.spec, parsed.window, bool(parsed.flags))


async def run_usage(request: UsageRequest, services: Services) -> UsageReport:
    """Ask every provider concerned at once; a failing one is named, not fatal."""
    catalog = services.settings.catalog
    if request.spec is not None:
        wanted = {request.spec.provider: list(request.spec.provider_model_ids)}
    else:
        wanted = {
            name: catalog.provider_ids(catalog.for_provider(name))
            for name in services.providers
        }

    answers = await asyncio.gather(
        *(
            _provider_usage(services.providers[name], request, ids)
            for name, ids in wanted.items()
            if name in services.providers
        )
    )

    reports = [
        summarize_usage(request.window, name, catalog, ids, points)
        for name, ids, points, _ in answers
    ]
    report = reports[0] if len(reports) == 1 else _merge(request.window, reports)
    # Discovery and the data request often fail for one reason: say it once.
    report.errors = list(
        dict.fromkeys(failure for *_, failures in answers for failure in failures)
    )
    missing = [name for name in wanted if name not in services.providers]
    report.errors += [
        SourceFailure(name, "provider is not configured") for name in missing
    ]
    return report


async def _provider_usage(
    provider: ProviderMetrics, request: UsageRequest, ids: list[str]
) -> tuple[str, list[str], list[PeriodCounts], list[SourceFailure]]:
    failures: list[SourceFailure] = []
    if request.spec is None:
        # A thief does not pick our favourite models: bill-side discovery first.
        try:
            active = await provider.active_model_ids(request.window)
            ids = ids + [model_id for model_id in active if model_id not in ids]
        except SourceError as exc:
            failures.append(SourceFailure(exc.source, exc.message))

    try:
        points = await provider.usage(request.window, ids)
    except SourceError as exc:
        failures.append(SourceFailure(exc.source, exc.message))
        return provider.name, [], [], failures
    return provider.name, ids, points, failures


def _merge(window: Window, reports: list[UsageReport]) -> UsageReport:
    rows = [row for report in reports for row in report.rows]
    series = {k: v for report in reports for k, v in report.series.items()}
    return UsageReport(window=window, rows=rows, series=series)
