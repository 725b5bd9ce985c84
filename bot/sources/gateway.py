"""Billable calls and tokens per model and period, as the gateway logged them.

ClickHouse does the counting; the bot receives one row per period and model. Only
events the provider would bill count: the configured environment, no cache hits,
and only events served by one of the given provider model IDs, so a call that fell
back to another provider (Vertex's `claude-opus-4-5@20251101`) is left out.
"""

from datetime import UTC, datetime
from typing import Any, Protocol

from bot.errors import SourceError
from bot.sources.records import Counts, PeriodCounts
from bot.sources.sqltext import integer, quote_list, quote_string
from bot.sources.tinybird import QueryResult
from bot.windows import Window

TABLE = "generation_event"


class SqlRunner(Protocol):
    """Anything that runs one SELECT and returns its rows (`TinybirdClient`)."""

    async def query(self, sql: str, *, name: str = ...) -> QueryResult: ...


def gateway_usage_sql(window: Window, model_ids: list[str], environment: str) -> str:
    """The one aggregate query; every value in it is a checked literal."""
    period = integer(window.period)
    if window.period <= 0:
        raise ValueError(f"window.period must be positive seconds; got {period}")
    # Buckets are whole periods since the epoch, as `resolve_window` aligns its start.
    return f"""
SELECT
    toUnixTimestamp(
        toStartOfInterval(start_time, INTERVAL {period} SECOND)
    ) AS period_start,
    model_used,
    count() AS invocations,
    sum(token_count_prompt_text) AS input_tokens,
    sum(token_count_completion_text) AS output_tokens
FROM {TABLE}
WHERE start_time >= toDateTime({integer(_epoch(window.start))})
    AND start_time < toDateTime({integer(_epoch(window.end))})
    AND environment = {quote_string(environment)}
    AND NOT cache_hit
    AND model_used IN {quote_list(model_ids)}
GROUP BY period_start, model_used
ORDER BY period_start, model_used
"""  # noqa: S608 - every interpolated value is a literal from sqltext


async def fetch_gateway_usage(
    client: SqlRunner, window: Window, model_ids: list[str], environment: str
) -> list[PeriodCounts]:
    """Calls and tokens the gateway logged per provider model ID and period."""
    if not model_ids:
        return []
    sql = gateway_usage_sql(window, model_ids, environment)
    result = await client.query(sql, name="gateway_usage")
    return [_point(index, row) for index, row in enumerate(result.data)]


def _point(index: int, row: dict[str, Any]) -> PeriodCounts:
    try:
        start = datetime.fromtimestamp(int(row["period_start"]), UTC)
        counts = Counts(
            invocations=int(row["invocations"]),
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row["output_tokens"]),
        )
        return PeriodCounts(model_id=str(row["model_used"]), start=start, counts=counts)
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(
            "tinybird",
            f"gateway row {index} must hold period_start, model_used and integer "
            f"counts; got {exc!r:.80}",
        ) from exc


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"window bounds must be timezone-aware; got {moment}")
    return int(moment.timestamp())


class GatewayEvents(Protocol):
    """What the gateway logged, per provider model ID and period."""

    name: str

    async def usage(self, window: Window, model_ids: list[str]) -> list[PeriodCounts]:
        """Calls and tokens the gateway served through these provider model IDs."""
        ...


class TinybirdGateway:
    """The `GatewayEvents` of our gateway: its `generation_event` table."""

    name = "tinybird"

    def __init__(self, runner: SqlRunner, environment: str) -> None:
        self._runner = runner
        self._environment = environment

    async def usage(self, window: Window, model_ids: list[str]) -> list[PeriodCounts]:
        return await fetch_gateway_usage(
            self._runner, window, model_ids, self._environment
        )
