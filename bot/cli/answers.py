"""Commands as a terminal sees them: a JSON document, tables and charts."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.commands.answer import Chart
from bot.commands.charts import usage_png
from bot.commands.usage import parse_usage, run_usage
from bot.render import jsondoc, tables
from bot.services import Services


@dataclass
class TerminalAnswer:
    doc: dict[str, Any]
    tables: list[tables.Table]
    charts: list[Chart] = field(default_factory=list)
    partial: bool = False
    notes: list[str] = field(default_factory=list)


# Preparing validates the words (InputError) before any backend is called.
TerminalPrepared = Callable[[], Awaitable[TerminalAnswer]]


def prepare_usage(words: str, services: Services) -> TerminalPrepared:
    request = parse_usage(words, services.settings)

    async def answer() -> TerminalAnswer:
        report = await run_usage(request, services)
        charts = []
        if request.wants_chart and report.rows:
            png = await usage_png(report, services.settings.timezone)
            charts.append(Chart("usage.png", "invocations per period", png))
        return TerminalAnswer(
            doc=jsondoc.usage_doc(report),
            tables=[tables.usage_table(report)],
            charts=charts,
            partial=bool(report.errors),
        )

    return answer
