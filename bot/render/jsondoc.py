"""Reports as JSON documents: the stable shape that scripts read from `--json`."""

from typing import Any

from bot.analysis.usage import UsageReport
from bot.sources.records import SourceFailure


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
