"""Reports as tables: one shape that both the terminal and Slack know how to draw."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from bot.analysis.coverage import CoverageReport, Verdict
from bot.analysis.ipcheck import IpcheckReport
from bot.analysis.logs_coverage import LogsReport, LogsVerdict
from bot.analysis.usage import UsageReport
from bot.catalog import Catalog
from bot.render import numbers
from bot.sources.records import Counts
from bot.sources.ssh import HostReport

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


def _some(names: list[str], limit: int = 20) -> str:
    """A list short enough for a note; the table and --json have the rest."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
            + _some(report.unknown_models)
        )
    if idle:
        notes.append("No traffic: " + _some(idle))
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


def _tokens_cell(counts: Counts | None) -> str:
    return "n/a" if counts is None else numbers.compact(counts.input_tokens)


def _calls(counts: Counts | None) -> int:
    return 0 if counts is None else counts.invocations


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


LOGS_VERDICT_MEANING = {
    LogsVerdict.CONSISTENT: "the gateway logged what the service served",
    LogsVerdict.GATEWAY_MISSING_EVENTS: "the service served calls the gateway did not "
    "log: ingestion is failing, or calls reach the service without the gateway",
    LogsVerdict.GATEWAY_EXTRA_EVENTS: "the gateway logged calls the service did not "
    "serve: cache hits, or other sources writing to the event store",
}


def logs_table(report: LogsReport, catalog: Catalog) -> Table:
    """`/coverage logs`: the service journal against the gateway, per model."""
    rows = []
    order = [
        LogsVerdict.GATEWAY_MISSING_EVENTS,
        LogsVerdict.GATEWAY_EXTRA_EVENTS,
        LogsVerdict.CONSISTENT,
        LogsVerdict.NO_DATA,
    ]
    ranked = sorted(
        report.models,
        key=lambda i: (order.index(i.verdict), -_calls(i.logs or i.gateway)),
    )
    for item in ranked:
        spec = catalog.by_provider_id("bedrock", item.model_id)
        rows.append(
            [
                spec.name if spec else f"unknown: {item.model_id}",
                _counts_cell(item.logs),
                _counts_cell(item.gateway),
                numbers.share(item.ratio),
                _tokens_cell(item.logs),
                _tokens_cell(item.gateway),
                item.verdict.value,
            ]
        )

    notes = [
        f"{verdict.value}: {LOGS_VERDICT_MEANING[verdict]}"
        for verdict in dict.fromkeys(item.verdict for item in report.models)
        if verdict not in (LogsVerdict.CONSISTENT, LogsVerdict.NO_DATA)
    ]
    notes += _host_notes(report.hosts)
    return Table(
        title=f"Service logs against the gateway, last {report.window.label}",
        columns=[
            Column("model", "left"),
            Column("logs calls"),
            Column("gateway calls"),
            Column("share"),
            Column("logs in tok"),
            Column("gateway in tok"),
            Column("verdict", "left"),
        ],
        rows=rows,
        notes=notes,
    )


def _host_notes(hosts: list[HostReport]) -> list[str]:
    return [
        f"{host.host}: {numbers.count(host.lines)} lines, "
        f"{numbers.count(host.unparsed)} unparsed"
        for host in hosts
    ]


def _top(pairs: list[tuple[str, int]], limit: int = 3) -> str:
    return ", ".join(
        f"{value} ({numbers.count(count)})" for value, count in pairs[:limit]
    )


def ipcheck_table(report: IpcheckReport, tz: str, limit: int) -> Table:
    """`/ipcheck`: callers by requests; outside the expected ingress is flagged.

    With an IP asked for, the answer is that IP's activity per period instead.
    """
    if report.ip is not None:
        return ip_activity_table(report, tz)
    rows = [
        [
            ip.ip,
            numbers.count(ip.requests),
            "yes" if ip.expected_ingress else "NO",
            _top(ip.models),
            _top(ip.token_prefixes),
            _clock(ip.first_seen, tz),
            _clock(ip.last_seen, tz),
        ]
        for ip in report.ips[:limit]
    ]
    notes = []
    if len(report.ips) > limit:
        notes.append(f"{len(report.ips) - limit} more IPs; --json has them all.")
    if report.outside:
        count = len(report.outside)
        who = "1 IP calls" if count == 1 else f"{count} IPs call"
        notes.append(
            f"{who} the service from outside the expected ingress ranges, "
            "i.e. directly."
        )
    notes += _host_notes(report.hosts)
    subject = f" for {report.ip}" if report.ip else ""
    return Table(
        title=f"Callers of the service{subject}, last {report.window.label}",
        columns=[
            Column("ip", "left"),
            Column("requests"),
            Column("ingress", "left"),
            Column("models", "left"),
            Column("tokens", "left"),
            Column("first", "left"),
            Column("last", "left"),
        ],
        rows=rows,
        total=["total", numbers.count(report.total_requests), "", "", "", "", ""],
        notes=notes,
    )


def ip_activity_table(report: IpcheckReport, tz: str) -> Table:
    """`/ipcheck IP`: that IP's requests per period, what it asked for in the notes."""
    minutes = report.window.period // 60
    rows = [
        [_clock(point.start, tz), numbers.count(point.requests)]
        for point in report.series
    ]
    seen = report.ips[0] if report.ips else None
    if seen is None:
        notes = [f"{report.ip} is not in the service logs of this window."]
    else:
        where = "inside" if seen.expected_ingress else "OUTSIDE"
        notes = [
            f"{seen.ip}: {where} the expected ingress ranges; first seen "
            f"{_clock(seen.first_seen, tz)}, last seen {_clock(seen.last_seen, tz)}.",
            f"models: {_top(seen.models)}; tokens: {_top(seen.token_prefixes)}; "
            f"paths: {_top(seen.paths)}",
        ]
    notes += _host_notes(report.hosts)
    label = report.window.label
    return Table(
        title=f"Requests from {report.ip} per {minutes} min, last {label}",
        columns=[Column("from", "left"), Column("requests")],
        rows=rows,
        total=["total", numbers.count(sum(p.requests for p in report.series))],
        notes=notes,
    )


def _clock(moment: datetime | None, tz: str) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M")
