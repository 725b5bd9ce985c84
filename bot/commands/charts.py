"""Charts for command answers, rendered off the event loop."""

import asyncio
from collections import defaultdict
from datetime import datetime

from bot.analysis.coverage import CoverageReport, ModelCoverage, Verdict
from bot.analysis.usage import UsageReport
from bot.render.plots import CoverageBox, coverage_chart, usage_chart


def _usage_png(report: UsageReport, tz: str) -> bytes:
    per_period: dict[datetime, int] = defaultdict(int)
    for series in report.series.values():
        for start, invocations in series:
            per_period[start] += invocations
    periods = sorted(per_period)

    names = [row.name or row.model_id for row in report.rows if row.counts.invocations]
    subject = names[0] if len(names) == 1 else "all models"
    return usage_chart(
        title=f"Invocations, {subject}, last {report.window.label}",
        periods=periods,
        invocations=[per_period[p] for p in periods],
        period_seconds=report.window.period,
        tz=tz,
    )


# Matplotlib holds the GIL while it draws: a few charts at a time leave the event
# loop free to ack new commands when many arrive at once.
_DRAWING = asyncio.Semaphore(2)


async def usage_png(report: UsageReport, tz: str) -> bytes:
    """Matplotlib is CPU-bound and blocking, so it draws in a worker thread."""
    async with _DRAWING:
        return await asyncio.to_thread(_usage_png, report, tz)


def chart_subject(report: CoverageReport) -> ModelCoverage | None:
    """The model whose gap a chart should show: the worst one with any traffic."""
    for model in report.worst():
        if model.series and model.verdict not in (Verdict.NO_TRAFFIC, Verdict.NO_DATA):
            return model
    return None


def _coverage_png(
    report: CoverageReport, model: ModelCoverage, tz: str, note: str | None
) -> bytes:
    label = f"Verdict: {model.verdict.value}" + (f"\n{note}" if note else "")
    box = CoverageBox(
        provider_total=model.provider.invocations if model.provider else 0,
        gateway_total=model.gateway.invocations if model.gateway else 0,
        coverage=model.invocation_coverage,
        uncovered=model.uncovered.invocations,
        uncovered_cost_usd=model.uncovered_cost_usd,
        label=label,
    )
    return coverage_chart(
        title=f"{model.name or model.model_id} · last {report.window.label}"
        " · provider vs gateway",
        periods=[p.start for p in model.series],
        provider=[p.provider for p in model.series],
        gateway=[p.gateway for p in model.series],
        period_seconds=report.window.period,
        tz=tz,
        totals=box,
    )


async def coverage_png(
    report: CoverageReport, model: ModelCoverage, tz: str, note: str | None = None
) -> bytes:
    """The coverage chart; `note` adds a line under the verdict (the watch's rule)."""
    async with _DRAWING:
        return await asyncio.to_thread(_coverage_png, report, model, tz, note)
