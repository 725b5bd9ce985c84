"""Reports as JSON documents: the stable shape that scripts read from `--json`."""

from datetime import datetime
from typing import Any

from bot.analysis.coverage import CoverageReport
from bot.analysis.ipcheck import IpcheckReport
from bot.analysis.logs_coverage import LogsReport
from bot.analysis.usage import UsageReport
from bot.catalog import Catalog
from bot.sources.records import Counts, SourceFailure
from bot.sources.ssh import HostReport


def errors_doc(errors: list[SourceFailure]) -> list[dict[str, str]]:
    return [{"source": e.source, "message": e.message} for e in errors]


def usage_doc(report: UsageReport) -> dict[str, Any]:
    return {
        "window": report.window.as_dict(),
        "period_seconds": report.window.period,
        "models": [
            {
                "model": row.name,
                "provider": row.provider,
                "provider_model_id": row.model_id,
                "known": row.spec is not None,
                "invocations": row.counts.invocations,
                "input_tokens": row.counts.input_tokens,
                "output_tokens": row.counts.output_tokens,
                "throttles": row.counts.throttles,
                # Throttled calls are not invocations: a share of all attempts.
                "throttle_share": _share(row.throttle_share),
                "cost_usd": None if row.cost_usd is None else round(row.cost_usd, 6),
            }
            for row in report.rows
        ],
        "total": {
            "invocations": report.total.invocations,
            "input_tokens": report.total.input_tokens,
            "output_tokens": report.total.output_tokens,
            "throttles": report.total.throttles,
            "cost_usd": round(report.total_cost_usd, 6),
        },
        "errors": errors_doc(report.errors),
    }


def _counts(counts: Counts | None) -> dict[str, int] | None:
    if counts is None:
        return None
    return {
        "invocations": counts.invocations,
        "input_tokens": counts.input_tokens,
        "output_tokens": counts.output_tokens,
    }


def _share(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def coverage_doc(report: CoverageReport) -> dict[str, Any]:
    return {
        "window": report.window.as_dict(),
        "period_seconds": report.window.period,
        "provider": report.provider,
        "models": [
            {
                "model": m.name,
                "provider_model_id": m.model_id,
                "provider": _counts(m.provider),
                "gateway": _counts(m.gateway),
                "invocation_coverage": _share(m.invocation_coverage),
                "input_token_coverage": _share(m.input_token_coverage),
                "output_token_coverage": _share(m.output_token_coverage),
                "uncovered_invocations": m.uncovered.invocations,
                "uncovered_input_tokens": m.uncovered.input_tokens,
                "uncovered_output_tokens": m.uncovered.output_tokens,
                "uncovered_cost_usd": None
                if m.uncovered_cost_usd is None
                else round(m.uncovered_cost_usd, 6),
                "verdict": m.verdict.value,
                "gap_began": _moment(m.gap_began),
                "gap_ended": _moment(m.gap_ended),
                "series": [
                    {
                        "start": p.start.isoformat(),
                        "provider": p.provider,
                        "gateway": p.gateway,
                    }
                    for p in m.series
                ],
            }
            for m in report.models
        ],
        "uncovered_cost_usd": round(report.uncovered_cost_usd, 6),
        "errors": errors_doc(report.errors),
    }


def hosts_doc(hosts: list[HostReport]) -> list[dict[str, Any]]:
    return [
        {"host": h.host, "lines": h.lines, "unparsed": h.unparsed,
         "bytes_received": h.bytes_received}
        for h in hosts
    ]  # fmt: skip


def logs_doc(report: LogsReport, catalog: Catalog) -> dict[str, Any]:
    models = []
    for item in report.models:
        spec = catalog.by_provider_id("bedrock", item.model_id)
        models.append(
            {
                "model": spec.name if spec else None,
                "provider_model_id": item.model_id,
                "logs": _counts(item.logs),
                "gateway": _counts(item.gateway),
                "invocation_ratio": _share(item.ratio),
                "verdict": item.verdict.value,
            }
        )
    return {
        "window": report.window.as_dict(),
        "models": models,
        "hosts": hosts_doc(report.hosts),
        "errors": errors_doc(report.errors),
    }


def ipcheck_doc(report: IpcheckReport) -> dict[str, Any]:
    return {
        "window": report.window.as_dict(),
        "ip": report.ip,
        "total_requests": report.total_requests,
        "ips": [
            {
                "ip": s.ip,
                "requests": s.requests,
                "expected_ingress": s.expected_ingress,
                "models": dict(s.models),
                "token_prefixes": dict(s.token_prefixes),
                "paths": dict(s.paths),
                "first_seen": _moment(s.first_seen),
                "last_seen": _moment(s.last_seen),
            }
            for s in report.ips
        ],
        "series": [
            {"start": p.start.isoformat(), "requests": p.requests}
            for p in report.series
        ],
        "hosts": hosts_doc(report.hosts),
        "errors": errors_doc(report.errors),
    }
