"""Slash commands as Slack sees them: validate now, answer later."""

from collections.abc import Callable
from dataclasses import dataclass

from bot.commands.answer import Answer, Chart, Prepared
from bot.commands.charts import chart_subject, coverage_png, usage_png
from bot.commands.coverage import parse_coverage, run_coverage
from bot.commands.ipcheck import MAX_IPS, parse_ipcheck, run_ipcheck
from bot.commands.logs import is_logs_request, parse_logs, run_logs
from bot.commands.usage import parse_usage, run_usage
from bot.render import blocks, tables
from bot.services import Services


@dataclass(frozen=True)
class SlashCommand:
    """One slash command: its name, who may run it, and how to prepare an answer."""

    name: str
    prepare: Callable[[str, Services], Prepared]
    admins_only: bool = False


def prepare_usage(text: str, services: Services) -> Prepared:
    request = parse_usage(text, services.settings)

    async def answer() -> Answer:
        report = await run_usage(request, services)
        fallback, body = blocks.report_message(
            tables.usage_table(report), report.errors
        )
        charts = []
        if request.wants_chart and report.rows:
            png = await usage_png(report, services.settings.timezone)
            charts.append(Chart("usage.png", fallback, png))
        return Answer(fallback, body, charts, partial=bool(report.errors))

    return answer


def prepare_coverage(text: str, services: Services) -> Prepared:
    if is_logs_request(text):
        return prepare_logs(text.split()[1:], services)
    request = parse_coverage(text, services.settings)
    tz = services.settings.timezone

    async def answer() -> Answer:
        report = await run_coverage(request, services)
        summary = blocks.coverage_summary(report, tz)
        _, body = blocks.report_message(
            tables.coverage_table(report), report.errors, summary=summary
        )
        charts = []
        subject = chart_subject(report)
        if subject is not None:
            png = await coverage_png(report, subject, tz)
            title = f"Coverage of {subject.name or subject.model_id}"
            charts.append(Chart("coverage.png", title, png))
        return Answer(summary, body, charts, partial=bool(report.errors))

    return answer


def prepare_logs(words: list[str], services: Services) -> Prepared:
    request = parse_logs(words, services.settings)

    async def answer() -> Answer:
        report = await run_logs(request, services)
        table = tables.logs_table(report, services.settings.catalog)
        text, body = blocks.report_message(table, report.errors)
        return Answer(text, body, partial=bool(report.errors))

    return answer


def prepare_ipcheck(text: str, services: Services) -> Prepared:
    request = parse_ipcheck(text, services.settings)
    tz = services.settings.timezone

    async def answer() -> Answer:
        report = await run_ipcheck(request, services)
        table = tables.ipcheck_table(report, tz, limit=MAX_IPS)
        text, body = blocks.report_message(table, report.errors)
        return Answer(text, body, partial=bool(report.errors))

    return answer


COMMANDS = [
    SlashCommand("usage", prepare_usage),
    SlashCommand("coverage", prepare_coverage),
    SlashCommand("ipcheck", prepare_ipcheck, admins_only=True),
]
