"""Reports as JSON documents: the stable shape that scripts read from `--json`."""

from datetime import datetime
from typing import Any

from bot.analysis.coverage import CoverageReport
from bot.analysis.usage import UsageReport
from bot.sources.records import Counts, SourceFailure


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
