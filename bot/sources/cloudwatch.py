"""Bedrock usage from CloudWatch: one `GetMetricData` request for every series.

boto3 is blocking, so every call goes through `asyncio.to_thread`. The endpoint,
credentials and `AWS_ENDPOINT_URL` stay with boto3's own configuration chain.
"""

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.config import Settings
from bot.errors import SourceError, SourceTimeout
from bot.sources.records import Counts, PeriodCounts
from bot.windows import Window

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

log = logging.getLogger(__name__)

NAMESPACE = "AWS/Bedrock"
DIMENSION = "ModelId"
# Metric name -> the Counts field it fills.
METRICS = {
    "Invocations": "invocations",
    "InputTokenCount": "input_tokens",
    "OutputTokenCount": "output_tokens",
    "InvocationThrottles": "throttles",
}
# CloudWatch accepts at most 500 queries in one GetMetricData request.
MAX_QUERIES = 500

T = TypeVar("T")


class CloudWatchMetrics:
    """The `ProviderMetrics` of AWS Bedrock, read from CloudWatch."""

    name = "bedrock"

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint_url: str | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """Endpoint and credentials come from boto3's chain unless given (stand-ins)."""
        config = Config(
            region_name=settings.aws_region,
            connect_timeout=settings.aws_timeout_seconds,
            read_timeout=settings.aws_timeout_seconds,
            # total_max_attempts counts the first try, as AWS_MAX_ATTEMPTS does.
            retries={
                "mode": "adaptive",
                "total_max_attempts": settings.aws_max_attempts,
            },
        )
        key_id, secret = credentials or (None, None)
        self._client: CloudWatchClient = boto3.client(
            "cloudwatch",
            config=config,
            endpoint_url=endpoint_url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        self.requests = 0

    async def active_model_ids(self, window: Window) -> list[str]:
        """Every ModelId that has an `Invocations` metric, catalogued or not."""
        # ListMetrics knows only metrics with data in the last two weeks, and a
        # metric may take up to 15 minutes to appear in it: an unknown model that
        # billed only before that, or began in the last minutes, is not found.
        pages = await self._call(self._list_metrics)
        return sorted(pages)

    async def usage(self, window: Window, model_ids: list[str]) -> list[PeriodCounts]:
        """All metrics of all model IDs, per period, in as few requests as allowed."""
        queries = list(_queries(model_ids, window.period))
        if not queries:
            return []

        # Requests of at most 500 queries each, sent at once: a catalog past 125
        # models costs no extra round trip.
        chunks = [
            queries[start : start + MAX_QUERIES]
            for start in range(0, len(queries), MAX_QUERIES)
        ]
        answers = await asyncio.gather(
            *(self._call(self._get_metric_data, chunk, window) for chunk in chunks)
        )
        values: dict[tuple[str, datetime], dict[str, int]] = defaultdict(dict)
        for results in answers:
            for query_id, timestamps, numbers in results:
                model_id, field = _decode_id(query_id, model_ids)
                for stamp, number in zip(timestamps, numbers, strict=True):
                    values[(model_id, stamp.astimezone(UTC))][field] = round(number)

        return [
            PeriodCounts(model_id, start, Counts(**fields))
            for (model_id, start), fields in sorted(values.items())
        ]

    def _list_metrics(self) -> set[str]:
        found: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Namespace": NAMESPACE,
                "MetricName": "Invocations",
            }
            if token:
                kwargs["NextToken"] = token
            page = self._client.list_metrics(**kwargs)
            self.requests += 1
            for metric in page.get("Metrics", []):
                for dim in metric.get("Dimensions", []):
                    if dim.get("Name") == DIMENSION and dim.get("Value"):
                        found.add(dim["Value"])
            token = page.get("NextToken")
            if not token:
                return found

    def _get_metric_data(
        self, queries: list[dict[str, Any]], window: Window
    ) -> list[tuple[str, list[datetime], list[float]]]:
        results: dict[str, tuple[list[datetime], list[float]]] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "MetricDataQueries": queries,
                "StartTime": window.start,
                "EndTime": window.end,
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            page = self._client.get_metric_data(**kwargs)
            self.requests += 1
            for result in page.get("MetricDataResults", []):
                stamps, numbers = results.setdefault(result["Id"], ([], []))
                stamps.extend(result.get("Timestamps", []))
                numbers.extend(result.get("Values", []))
            token = page.get("NextToken")
            if not token:
                return [(qid, s, n) for qid, (s, n) in results.items()]

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        outcome = "ok"
        try:
            return await asyncio.to_thread(fn, *args)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            outcome = code = error.get("Code", "error")
            raise SourceError(
                "cloudwatch", f"{code}: {error.get('Message', '')}"
            ) from exc
        except BotoCoreError as exc:
            outcome = type(exc).__name__
            if "timeout" in outcome.lower():
                raise SourceTimeout("cloudwatch", f"no answer: {exc}") from exc
            raise SourceError("cloudwatch", str(exc)) from exc
        finally:
            log.info(
                "backend call",
                extra={
                    "source": "cloudwatch",
                    "call": fn.__name__.strip("_"),
                    "outcome": outcome,
                    "ms": round((time.monotonic() - started) * 1000),
                },
            )


def _queries(model_ids: list[str], period: int) -> Iterator[dict[str, Any]]:
    # Query IDs must match ^[a-z][a-zA-Z0-9_]*$, so they carry indexes, not IDs.
    for index, model_id in enumerate(model_ids):
        for metric in METRICS:
            yield {
                "Id": f"m{index}_{metric}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": metric,
                        "Dimensions": [{"Name": DIMENSION, "Value": model_id}],
                    },
                    "Period": period,
                    "Stat": "Sum",
                },
                "ReturnData": True,
            }


def _decode_id(query_id: str, model_ids: list[str]) -> tuple[str, str]:
    index, metric = query_id[1:].split("_", 1)
    return model_ids[int(index)], METRICS[metric]
