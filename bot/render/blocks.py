"""Reports as Slack Block Kit messages, within Block Kit's limits."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot import messages
from bot.analysis.coverage import (
    CoverageReport,
    ModelCoverage,
    PeriodCoverage,
    Verdict,
)
from bot.render import numbers
from bot.render.tables import Table, to_text
from bot.sources.records import Counts, SourceFailure

Block = dict[str, Any]

# Block Kit: 50 blocks a message, 3,000 characters a section's text, one table of
# at most 100 rows and 20 columns, 150 characters in a header.
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_TABLE_ROWS = 100
MAX_TABLE_COLUMNS = 20
MAX_HEADER_CHARS = 150
_ALARMING = (
    Verdict.LIKELY_UNAUTHORIZED,
    Verdict.BELOW_BASELINE,
    Verdict.GATEWAY_EXCEEDS_PROVIDER,
)
CUT_NOTE = "Answer cut to fit Slack; `usage-bot … --json` has all of it."


def header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": text[:MAX_HEADER_CHARS]},
    }


def fit(text: str, limit: int = MAX_SECTION_CHARS) -> str:
    """Text cut to a Block Kit limit, with an ellipsis saying that it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text)}}


def context(text: str) -> Block:
    # A context element's text has the same 3,000-character limit as a section's.
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(text)}]}


def table_block(table: Table) -> Block:
    """Slack's table block: header row plus data rows, numbers right-aligned."""
    grid = [[c.name for c in table.columns], *table.all_rows()]
    return {
        "type": "table",
        "column_settings": [{"align": c.align} for c in table.columns],
        "rows": [
            [{"type": "raw_text", "text": cell or " "} for cell in row] for row in grid
        ],
    }


def monospace_sections(text: str) -> list[Block]:
    """A long table as code blocks, split on line ends below the section limit."""
    budget = MAX_SECTION_CHARS - len("``````")
    chunks: list[str] = []
    current = ""
    for line in text.splitlines():
        if current and len(current) + len(line) + 1 > budget:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:budget]
    if current:
        chunks.append(current)
    return [section(f"```{chunk}```") for chunk in chunks]


def table_blocks(table: Table) -> list[Block]:
    """The table block where it fits, a monospace fallback where it does not."""
    fits = (
        len(table.all_rows()) + 1 <= MAX_TABLE_ROWS
        and len(table.columns) <= MAX_TABLE_COLUMNS
    )
    return [table_block(table)] if fits else monospace_sections(to_text(table))


def errors_block(errors: list[SourceFailure]) -> list[Block]:
    if not errors:
        return []
    lines = [f":warning: *{e.source}*: {e.message}" for e in errors]
    return [section("Partial answer.\n" + "\n".join(lines))]


def report_message(
    table: Table,
    errors: list[SourceFailure],
    summary: str | None = None,
    extra: list[Block] | None = None,
) -> tuple[str, list[Block]]:
    """Fallback text and blocks for a whole answer, trimmed to Slack's limits.

    What is cut, when something must be, is the end of a long table: the summary,
    the notes and the names of failed sources always stay.
    """
    head = [header(table.title)] + ([section(summary)] if summary else [])
    tail = [context(note) for note in table.notes] + errors_block(errors)
    tail += extra or []
    body = table_blocks(table)

    room = MAX_BLOCKS - len(head) - len(tail)
    if len(body) > room:
        body = [*body[: room - 1], context(CUT_NOTE)]
    blocks = head + body + tail
    return summary or table.title, blocks


def local_time(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%a %d %b %H:%M %Z")


def coverage_summary(report: CoverageReport, tz: str) -> str:
    """The first lines an incident channel reads: the worst finding, in words."""
    flagged = [m for m in report.worst() if m.verdict in _ALARMING]
    if not flagged and report.errors:
        # One side missing is no evidence that traffic is covered.
        failed = list(dict.fromkeys(e.source for e in report.errors))
        return f":warning: {messages.coverage_not_judged(failed)}"
    # A total that looks fine can hide a bypass that began late in the window.
    hidden = [
        (m, gap) for m in report.worst()
        if m.verdict not in _ALARMING and (gap := m.ongoing_gap()) is not None
    ]  # fmt: skip
    lines = [_finding(model, report, tz) for model in flagged]
    lines += [_recent_gap(model, gap, report, tz) for model, gap in hidden]
    if not lines:
        return ":white_check_mark: Every model's traffic is covered by the gateway."
    return "\n".join(lines[:5])


def _recent_gap(
    model: ModelCoverage, gap: PeriodCoverage, report: CoverageReport, tz: str
) -> str:
    name = model.name or f"`{model.model_id}` (not in the catalog)"
    return (
        f":rotating_light: *{name}*: {numbers.share(model.invocation_coverage)} "
        f"over the {report.window.label} ({model.verdict.value}), but only "
        f"{numbers.share(gap.coverage)} since {local_time(gap.start, tz)}: "
        f"{numbers.count(max(0, gap.provider - gap.gateway))} calls billed and not "
        "logged, "
        "still going on."
    )


def _finding(model: ModelCoverage, report: CoverageReport, tz: str) -> str:
    name = model.name or f"`{model.model_id}` (not in the catalog)"
    billed, logged = model.provider or Counts(), model.gateway or Counts()
    if model.verdict is Verdict.GATEWAY_EXCEEDS_PROVIDER:
        return (
            f":warning: *{name}*: the gateway logged "
            f"{numbers.count(logged.invocations)} calls but the provider billed "
            f"{numbers.count(billed.invocations)} "
            f"({numbers.share(model.invocation_coverage)}; {model.verdict.value}): "
            "a model mapping or fallback problem, not a bypass."
        )

    line = (
        f":rotating_light: *{name}*: {numbers.share(model.invocation_coverage)} "
        f"of billed calls passed the gateway ({model.verdict.value}); "
        f"{numbers.count(model.uncovered.invocations)} uncovered calls, "
        f"{numbers.usd(model.uncovered_cost_usd)}"
    )
    if model.gap_began is not None and model.gap_began <= report.window.start:
        line += ", gap through the whole window"
    elif model.gap_began is not None:
        line += f", gap since {local_time(model.gap_began, tz)}"
    if model.gap_began is not None and model.gap_ended is not None:
        line += f" until {local_time(model.gap_ended, tz)}"
    return line + "."
