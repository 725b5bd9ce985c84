"""Commands as a terminal sees them: a JSON document, tables and charts."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.commands.answer import Chart
from bot.commands.charts import chart_subject, coverage_png, usage_png
from bot.commands.coverage import parse_coverage, run_coverage
from bot.commands.ipcheck import MAX_IPS, parse_ipcheck, run_ipcheck
from bot.commands.logs import is_logs_request, parse_logs, run_logs
from bot.commands.usage import parse_usage, run_usage
from bot.render import blocks, jsondoc, tables
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


def prepare_coverage(words: str, services: Services) -> TerminalPrepared:
    if is_logs_request(words):
        return prepare_logs(words.split()[1:], services)
    request = parse_coverage(words, services.settings)
    tz = services.settings.timezone

    async def answer() -> TerminalAnswer:
        report = await run_coverage(request, services)
        charts = []
        subject = chart_subject(report)
        if subject is not None:
            png = await coverage_png(report, subject, tz)
            charts.append(Chart("coverage.png", f"coverage of {subject.model_id}", png))
        return TerminalAnswer(
            doc=jsondoc.coverage_doc(report),
            tables=[tables.coverage_table(report)],
            charts=charts,
            partial=bool(report.errors),
            notes=[_plain(blocks.coverage_summary(report, tz))],
        )

    return answer


def prepare_logs(words: list[str], services: Services) -> TerminalPrepared:
    request = parse_logs(words, services.settings)
    catalog = services.settings.catalog

    async def answer() -> TerminalAnswer:
        report = await run_logs(request, services)
        return TerminalAnswer(
            doc=jsondoc.logs_doc(report, catalog),
            tables=[tables.logs_table(report, catalog)],
            partial=bool(report.errors),
        )

    return answer


def prepare_ipcheck(words: str, services: Services) -> TerminalPrepared:
    request = parse_ipcheck(words, services.settings)
    tz = services.settings.timezone

    async def answer() -> TerminalAnswer:
        report = await run_ipcheck(request, services)
        return TerminalAnswer(
            doc=jsondoc.ipcheck_doc(report),
            tables=[tables.ipcheck_table(report, tz, limit=MAX_IPS)],
            partial=bool(report.errors),
        )

    return answer


def _plain(mrkdwn: str) -> str:
    """Slack's emoji codes and bold marks read as noise in a terminal."""
    replacements = (
        (":rotating_light: ", "! "),
        (":warning: ", "! "),
        (":white_check_mark: ", ""),
    )
    for code, word in replacements:
        mrkdwn = mrkdwn.replace(code, word)
    return mrkdwn.replace("*", "").replace("`", "")
