"""Reports as tables: one shape that both the terminal and Slack know how to draw."""

from dataclasses import dataclass, field
from typing import Literal

from bot.analysis.coverage import CoverageReport, Verdict
from bot.analysis.usage import UsageReport
from bot.render import numbers
from bot.sources.records import Counts

Align = Literal["left", "right"]


@dataclass(frozen=True)
class Column:
    name: str
    align: Align = "right"


@dataclass
class Table:
    """A titled grid of already formatted cells, with an optional total row."""

    title: str
    columns: list[Column]
    rows: list[list[str]]
    total: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def all_rows(self) -> list[list[str]]:
        return self.rows + ([self.total] if self.total else [])


def to_text(table: Table) -> str:
    """Monospace text with aligned columns, for terminals and code blocks."""
    grid = [[c.name for c in table.columns], *table.all_rows()]
    widths = [max(len(row[i]) for row in grid) for i in range(len(table.columns))]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(w) if col.align == "left" else cell.rjust(w)
            for cell, w, col in zip(cells, widths, table.columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(grid[0]), rule, *(line(row) for row in table.rows)]
    if table.total:
        body += [rule, line(table.total)]
    return "\n".join(body)


def usage_table(report: UsageReport) -> Table:
    """`/usage`: one row per provider model ID, busiest first, and a total."""
    rows = []
    idle = []
    for row in report.rows:
        if not (row.counts.invocations or row.counts.throttles):
            idle.append(row.name or row.model_id)
            continue
        rows.append(
            [
                row.name or f"unknown: {row.model_id}",
                numbers.count(row.counts.invocations),
                numbers.compact(row.counts.input_tokens),
                numbers.compact(row.counts.output_tokens),
                f"{numbers.count(row.counts.throttles)}"
                f" ({numbers.share(row.throttle_share)})",
                numbers.usd(row.cost_usd),
            ]
        )

    total = report.total
    notes = []
    if report.unknown_models:
        notes.append(
            "Not in the catalog (billed, price unknown): "
            + ", ".join(report.unknown_models)
        )
    if idle:
        notes.append("No traffic: " + ", ".join(idle))
    return Table(
        title=f"Bedrock usage, last {report.window.label}",
        columns=[
            Column("model", "left"),
            Column("invocations"),
            Column("input tok"),
            Column("output tok"),
            Column("throttles"),
            Column("cost"),
        ],
        rows=rows,
        total=[
            "total",
            numbers.count(total.invocations),
            numbers.compact(total.input_tokens),
            numbers.compact(total.output_tokens),
            numbers.count(total.throttles),
            numbers.usd(report.total_cost_usd),
        ],
        notes=notes,
    )


def _counts_cell(counts: Counts | None) -> str:
    return "n/a" if counts is None else numbers.count(counts.invocations)


def coverage_table(report: CoverageReport) -> Table:
    """`/coverage`: billed against logged per model, worst first."""
    rows = []
    quiet = []
    for model in report.worst():
        if model.verdict is Verdict.NO_TRAFFIC:
            quiet.append(model.name or model.model_id)
            continue
        rows.append(
            [
                model.name or f"unknown: {model.model_id}",
                _counts_cell(model.provider),
                _counts_cell(model.gateway),
                numbers.share(model.invocation_coverage),
                numbers.share(model.input_token_coverage),
                numbers.count(model.uncovered.invocations),
                numbers.usd(model.uncovered_cost_usd),
                model.verdict.value,
            ]
        )

    notes = [f"No traffic: {', '.join(quiet)}"] if quiet else []
    return Table(
        title=f"Coverage, {report.provider} against the gateway, "
        f"last {report.window.label}",
        columns=[
            Column("model", "left"),
            Column("billed"),
            Column("logged"),
            Column("calls"),
            Column("input tok"),
            Column("uncovered"),
            Column("uncovered $"),
            Column("verdict", "left"),
        ],
        rows=rows,
        total=[
            "total",
            "",
            "",
            "",
            "",
            numbers.count(sum(m.uncovered.invocations for m in report.models)),
            numbers.usd(report.uncovered_cost_usd),
            "",
        ],
        notes=notes,
    )
