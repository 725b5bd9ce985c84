"""A CloudWatch stand-in: moto's server on loopback, spoken to by real boto3.

Requests are counted, and an optional delay is added to each, so that tests and
benchmarks can see how many round trips a command costs and what they cost.
"""

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import httpx
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from bot.sources.cloudwatch import DIMENSION, METRICS, NAMESPACE
from bot.sources.records import Counts

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

REGION = "us-east-1"
# moto accepts any credentials; these keep boto3 from looking for real ones.
CREDENTIALS = {"aws_access_key_id": "standin", "aws_secret_access_key": "standin"}
_BATCH = 1000

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class CloudWatchStandin:
    """moto's CloudWatch on 127.0.0.1 with a free port, reset on start and stop."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.delay_seconds = delay_seconds
        self.requests = 0
        self.actions: list[str] = []
        # (action, started, answered) on time.monotonic's clock, for benchmarks.
        self.timeline: list[tuple[str, float, float]] = []
        self._failures: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._holding = False
        self._released = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> "CloudWatchStandin":
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            "127.0.0.1",
            0,
            self._counting(app),
            threaded=True,
            request_handler=_QuietHandler,
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.reset()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.reset()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "CloudWatchStandin":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every metric: moto keeps its state per process, not per server."""
        self.release()
        httpx.post(f"{self.url}/moto-api/reset", timeout=5)
        self.requests = 0
        self.actions.clear()
        self.timeline.clear()
        self._failures.clear()

    def hold(self) -> None:
        """Keep every API request waiting, once counted, until `release()`."""
        self._released.clear()
        self._holding = True

    def release(self) -> None:
        """Let held requests, and those that follow, be answered."""
        self._holding = False
        self._released.set()

    def fail_next(self, code: str, message: str, times: int = 1) -> None:
        """Answer the next `times` API requests with an AWS error (Throttling...)."""
        with self._lock:
            self._failures.extend([(code, message)] * times)

    def client(self) -> "CloudWatchClient":
        return boto3.client(
            "cloudwatch",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )

    def put_counts(self, rows: Iterable[tuple[str, datetime, Counts]]) -> int:
        """Store per-model counts as the AWS/Bedrock metrics; returns data points."""
        client = self.client()
        stored = 0
        for batch in _batches(_datums(rows), _BATCH):
            client.put_metric_data(Namespace=NAMESPACE, MetricData=batch)
            stored += len(batch)
        self.requests = 0
        self.actions.clear()
        self.timeline.clear()
        return stored

    def _counting(self, app: WSGIApp) -> WSGIApp:
        def counted(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
            if environ.get("PATH_INFO", "").startswith("/moto-api"):
                return app(environ, start)
            began = time.monotonic()
            action = _action(environ)
            with self._lock:
                self.requests += 1
                self.actions.append(action)
                failure = self._failures.pop(0) if self._failures else None
            if self._holding:
                self._released.wait(timeout=30)
            if self.delay_seconds:
                time.sleep(self.delay_seconds)
            answer = _error(start, *failure) if failure else app(environ, start)
            with self._lock:
                self.timeline.append((action, began, time.monotonic()))
            return answer

        return counted


def _action(environ: dict[str, Any]) -> str:
    # boto3 names the operation in the X-Amz-Target header (JSON protocol) or in
    # the form body (query protocol); the header is enough to tell them apart.
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    return target.rsplit(".", 1)[-1] if target else "query"


def _error(start: Callable[..., Any], code: str, message: str) -> list[bytes]:
    # The AWS JSON 1.0 protocol's error shape, which boto3 turns into ClientError.
    body = json.dumps({"__type": code, "message": message}).encode()
    start(
        "400 Bad Request",
        [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error",
          f"{code};Sender")],
    )  # fmt: skip
    return [body]


def _datums(rows: Iterable[tuple[str, datetime, Counts]]) -> Iterator[dict[str, Any]]:
    for model_id, stamp, counts in rows:
        for metric, field in METRICS.items():
            value = getattr(counts, field)
            if value:
                yield {
                    "MetricName": metric,
                    "Dimensions": [{"Name": DIMENSION, "Value": model_id}],
                    "Timestamp": stamp,
                    "Value": float(value),
                    "Unit": "Count",
                }


def _batches(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
