"""Charts for command answers, rendered off the event loop."""

import asyncio
from collections import defaultdict
from datetime import datetime

from bot.analysis.usage import UsageReport
from bot.render.plots import usage_chart


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


async def usage_png(report: UsageReport, tz: str) -> bytes:
    """Matplotlib is CPU-bound and blocking, so it draws in a worker thread."""
    return await asyncio.to_thread(_usage_png, report, tz)
