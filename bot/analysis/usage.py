"""`/usage`: what the provider billed per model, with costs at catalog prices."""

from dataclasses import dataclass, field
from datetime import datetime

from bot.catalog import Catalog, ModelSpec
from bot.sources.records import (
    Counts,
    PeriodCounts,
    SourceFailure,
    totals_by_model,
)
from bot.windows import Window


@dataclass(frozen=True)
class ModelUsage:
    """One provider model ID's totals over the window."""

    model_id: str
    provider: str
    spec: ModelSpec | None
    counts: Counts

    @property
    def name(self) -> str | None:
        return self.spec.name if self.spec else None

    @property
    def cost_usd(self) -> float | None:
        if self.spec is None:
            return None
        return self.spec.cost_usd(self.counts.input_tokens, self.counts.output_tokens)

    @property
    def throttle_share(self) -> float | None:
        attempts = self.counts.invocations + self.counts.throttles
        return self.counts.throttles / attempts if attempts else None


@dataclass
class UsageReport:
    """Everything `/usage` answers, whatever renders it."""

    window: Window
    rows: list[ModelUsage]
    series: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)
    errors: list[SourceFailure] = field(default_factory=list)

    @property
    def total(self) -> Counts:
        return sum((row.counts for row in self.rows), Counts())

    @property
    def total_cost_usd(self) -> float:
        return sum(row.cost_usd or 0.0 for row in self.rows)

    @property
    def unknown_models(self) -> list[str]:
        return [row.model_id for row in self.rows if row.spec is None]


def summarize_usage(
    window: Window,
    provider: str,
    catalog: Catalog,
    model_ids: list[str],
    points: list[PeriodCounts],
) -> UsageReport:
    """Per-model totals, costs and invocation series, busiest model first."""
    totals = totals_by_model(points)
    rows = [
        ModelUsage(
            model_id=model_id,
            provider=provider,
            spec=catalog.by_provider_id(provider, model_id),
            counts=totals.get(model_id, Counts()),
        )
        for model_id in model_ids
    ]
    rows.sort(key=lambda row: (-(row.cost_usd or 0.0), -row.counts.invocations))

    series: dict[str, list[tuple[datetime, int]]] = {}
    for point in sorted(points, key=lambda p: p.start):
        series.setdefault(point.model_id, []).append(
            (point.start, point.counts.invocations)
        )
    return UsageReport(window=window, rows=rows, series=series)
