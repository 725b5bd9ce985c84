"""A local Tinybird: `/v0/sql` over real HTTP, answered by embedded ClickHouse (chDB).

Tests and `usage-bot demo` share it. It binds 127.0.0.1 on a free port, checks the
bearer token, runs one SELECT per request like Tinybird, and can be told to fail
the next requests in the ways Tinybird does. chDB keeps one embedded server per
process, so only one stand-in can run in a process at a time.
"""

import argparse
import contextlib
import hmac
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from chdb import session as chdb_session

from bot.sources.sqltext import quote_string
from bot.standins.serving import LoopbackServer, StandIn

TABLE = "generation_event"
DEFAULT_TOKEN = "standin-token"  # noqa: S105 - a local test server's fixed token

_COLUMNS = {
    "start_time": "DateTime('UTC')",
    "environment": "String",
    "model_requested": "String",
    "model_used": "String",
    "model_provider_used": "String",
    "token_count_prompt_text": "UInt64",
    "token_count_completion_text": "UInt64",
    "cache_hit": "Bool",
    "response_status": "UInt16",
    "is_billed_usage": "Bool",
    "user_id": "String",
    "ip": "String",
}
_BROKEN_JSON = b'{"meta": [], "data": ['
_READ_ONLY_STARTS = ("SELECT", "WITH", "DESCRIBE", "DESC")


@dataclass(frozen=True)
class GatewayEvent:
    """One row of `generation_event`; an empty `model_requested` means `model_used`."""

    start_time: datetime
    model_used: str
    environment: str = "production"
    model_requested: str = ""
    model_provider_used: str = "aws-bedrock"
    token_count_prompt_text: int = 0
    token_count_completion_text: int = 0
    cache_hit: bool = False
    response_status: int = 200
    is_billed_usage: bool = True
    user_id: str = ""
    ip: str = ""


@dataclass(frozen=True)
class Fault:
    """How to answer one request instead of running its query."""

    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    body: bytes | None = None


@dataclass
class ServedRequest:
    """One request the stand-in received; `status` is set once it is answered."""

    method: str
    query: str
    status: int | None = None
    # On time.monotonic's clock, for benchmarks.
    received: float = 0.0
    answered: float = 0.0


class TinybirdStandIn(StandIn):
    """A threaded HTTP server on 127.0.0.1 that answers `/v0/sql` from chDB."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        quote_64bit: bool = True,
        latency: float = 0.0,
    ) -> None:
        self.token = token
        self.latency = latency
        self.requests: list[ServedRequest] = []
        self.last_insert_seconds = 0.0
        self._quote_64bit = quote_64bit
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._dir: Path | None = None
        self._session: Any = None
        self._http = LoopbackServer("Tinybird stand-in", _Handler, self, _Server)

    @property
    def url(self) -> str:
        """Base URL to use as `TB_HOST`, e.g. `http://127.0.0.1:40123`."""
        return self._http.url

    @property
    def requests_served(self) -> int:
        return len(self.requests)

    def start(self) -> Self:
        """Create the table and start serving on a free port."""
        self._dir = Path(tempfile.mkdtemp(prefix="tinybird-standin-"))
        path = str(self._dir)
        self._session = chdb_session.Session(path)  # type: ignore[no-untyped-call]
        columns = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS.items())
        self._session.query(
            f"CREATE TABLE {TABLE} ({columns}) "
            "ENGINE = MergeTree ORDER BY (environment, start_time)"
        )
        self.quote_64bit = self._quote_64bit

        self._release.clear()
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop serving, close chDB and delete its files."""
        self._release.set()
        self._http.stop()
        if self._session is not None:
            with self._lock:
                self._session.close()
            self._session = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def quote_64bit(self) -> bool:
        """Whether JSON answers quote 64-bit integers, as ClickHouse does by default."""
        return self._quote_64bit

    @quote_64bit.setter
    def quote_64bit(self, value: bool) -> None:
        self._quote_64bit = value
        self.execute(f"SET output_format_json_quote_64bit_integers = {int(value)}")

    def insert_events(self, events: Iterable[GatewayEvent]) -> int:
        """Load events in one columnar, file-based INSERT; returns how many."""
        if self._dir is None:
            raise RuntimeError("the Tinybird stand-in must be started first")
        started = time.perf_counter()
        batch = list(events)
        if not batch:
            return 0

        path = self._dir / "events.json"
        path.write_text(json.dumps(_as_columns(batch)), encoding="utf-8")
        names = ", ".join(_COLUMNS)
        structure = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS.items())
        self.execute(
            f"INSERT INTO {TABLE} ({names}) SELECT {names} FROM file("  # noqa: S608
            f"{quote_string(str(path))}, 'JSONColumns', {quote_string(structure)})"
        )
        path.unlink()
        self.last_insert_seconds = time.perf_counter() - started
        return len(batch)

    def clear_events(self) -> None:
        self.execute(f"TRUNCATE TABLE {TABLE}")

    def execute(self, sql: str, fmt: str = "CSV") -> str:
        """Run any SQL directly, bypassing HTTP and its read-only rule (for tests)."""
        with self._lock:
            if self._session is None:
                raise RuntimeError("the Tinybird stand-in must be started first")
            return str(self._session.query(sql, fmt).bytes().decode())

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        error: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next `times` requests with `status` and `{"error": ...}`."""
        self._queue(Fault(status=status, error=error, retry_after=retry_after), times)

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """Hold the next `times` requests for `seconds` before answering them."""
        self._queue(Fault(delay=seconds), times)

    def malform_next(self, *, times: int = 1, body: bytes = _BROKEN_JSON) -> None:
        """Answer the next `times` requests with 200 and `body` (broken JSON)."""
        self._queue(Fault(body=body), times)

    def release_delays(self) -> None:
        """Answer every request that is still being held by a delay, now."""
        self._release.set()
        self._release.clear()

    def reset(self) -> None:
        """Back to an empty, healthy stand-in: no events, faults, latency or log."""
        with self._lock:
            self._faults.clear()
            self.requests = []
        self.release_delays()
        self.latency = 0.0
        self.clear_events()

    def _queue(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def answer(self, method: str, query: str, auth: str | None) -> "_Answer":
        """What to send back for one `/v0/sql` request."""
        served = ServedRequest(method, query, received=time.monotonic())
        with self._lock:
            self.requests.append(served)
            fault = self._faults.popleft() if self._faults else None
        pause = self.latency + (fault.delay if fault else 0.0)
        if pause:
            self._release.wait(pause)

        answer = self._answer(query, auth, fault)
        served.answered = time.monotonic()
        served.status = answer.status
        return answer

    def _answer(self, query: str, auth: str | None, fault: Fault | None) -> "_Answer":
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            message = fault.error or f"injected failure {fault.status}"
            return _Answer.error(fault.status, message, headers)
        if fault is not None and fault.body is not None:
            return _Answer(200, fault.body, "application/json")
        if auth is None:
            return _Answer.error(403, "a token is required: send Authorization: Bearer")
        if not hmac.compare_digest(auth.encode(), self.token.encode()):
            return _Answer.error(403, "invalid authentication token")
        if not query.strip():
            return _Answer.error(400, "the q parameter must hold a SQL query")
        refusal = read_only_refusal(query)
        if refusal:
            return _Answer.error(400, refusal)
        try:
            body = self._run(query)
        except Exception as exc:  # chDB raises plain errors for bad SQL
            return _Answer.error(400, " ".join(str(exc).split()))
        kind = "application/json" if body.startswith(b"{") else "text/plain"
        return _Answer(200, body, kind)

    def _run(self, query: str) -> bytes:
        with self._lock:
            if self._session is None:
                raise RuntimeError("the stand-in is stopping")
            return bytes(self._session.query(query, "TabSeparated").bytes())


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] | None = None

    @classmethod
    def error(
        cls, status: int, message: str, headers: dict[str, str] | None = None
    ) -> "_Answer":
        body = json.dumps({"error": message}).encode()
        return cls(status, body, "application/json", headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for clients that hung up (a timeout test); loud for anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self._reply_sql(url.path, "GET", parse_qs(url.query))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8"))
        self._reply_sql(url.path, "POST", {**parse_qs(url.query), **form})

    def _reply_sql(self, path: str, method: str, params: dict[str, list[str]]) -> None:
        if path.rstrip("/") != "/v0/sql":
            self._send(_Answer.error(404, f"no endpoint at {path}"))
            return
        standin: TinybirdStandIn = self.server.standin  # type: ignore[attr-defined]
        query = params.get("q", [""])[0]
        self._send(standin.answer(method, query, self._token(params)))

    def _token(self, params: dict[str, list[str]]) -> str | None:
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ")
        return params.get("token", [None])[0]

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in (answer.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests` instead of stderr."""


def _as_columns(events: list[GatewayEvent]) -> dict[str, list[Any]]:
    # One list per column encodes about ten times faster than one object per row.
    columns = {
        name: [getattr(event, name) for event in events]
        for name in _COLUMNS
        if name not in ("start_time", "model_requested")
    }
    columns["start_time"] = [int(event.start_time.timestamp()) for event in events]
    columns["model_requested"] = [
        event.model_requested or event.model_used for event in events
    ]
    return columns


def read_only_refusal(sql: str) -> str | None:
    """Why Tinybird would refuse this SQL (not one read-only statement), or None."""
    statements = [part for part in _split_statements(sql) if part.strip()]
    if len(statements) > 1:
        return "multi-statements are not allowed"
    words = statements[0].split(None, 1) if statements else []
    first = words[0].upper() if words else ""
    if first not in _READ_ONLY_STARTS:
        return f"only SELECT queries are allowed; got {first[:20] or 'nothing'}"
    return None


def _split_statements(sql: str) -> Iterator[str]:
    """Split on top-level `;`, skipping quoted text and comments (drops comments)."""
    current: list[str] = []
    index = 0
    while index < len(sql):
        char = sql[index]
        if char in "'\"`":
            end = _quoted_end(sql, index)
            current.append(sql[index:end])
            index = end
        elif sql.startswith("--", index):
            newline = sql.find("\n", index)
            index = len(sql) if newline < 0 else newline
        elif sql.startswith("/*", index):
            close = sql.find("*/", index + 2)
            index = len(sql) if close < 0 else close + 2
            current.append(" ")
        elif char == ";":
            yield "".join(current)
            current = []
            index += 1
        else:
            current.append(char)
            index += 1
    yield "".join(current)


def _quoted_end(sql: str, start: int) -> int:
    quote = sql[start]
    index = start + 1
    while index < len(sql):
        if sql[index] == "\\":
            index += 2
        elif sql[index] == quote:
            if sql.startswith(quote * 2, index):
                index += 2
            else:
                return index + 1
        else:
            index += 1
    return len(sql)


def synthetic_events(
    count: int, start: datetime, end: datetime, model_ids: list[str], seed: int = 7
) -> Iterator[GatewayEvent]:
    """Plausible gateway traffic: mostly production, some cache hits and fallbacks."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    span = (end - start).total_seconds()
    for _ in range(count):
        model = rng.choice(model_ids)
        roll = rng.random()
        yield GatewayEvent(
            start_time=start + timedelta(seconds=rng.uniform(0, span)),
            model_used="claude-opus-4-5@20251101" if roll < 0.03 else model,
            model_requested=model,
            environment="staging" if roll > 0.95 else "production",
            token_count_prompt_text=rng.randint(50, 4000),
            token_count_completion_text=rng.randint(10, 1500),
            cache_hit=0.03 <= roll < 0.08,
            user_id=f"user-{rng.randint(1, 200)}",
        )


def main(argv: list[str] | None = None) -> None:
    """Serve a stand-in loaded with synthetic events until interrupted."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)

    end = datetime.now(UTC).replace(microsecond=0)
    ids = ["global.anthropic.claude-opus-4-5-20251101-v1:0", "amazon.nova-micro-v1:0"]
    with TinybirdStandIn(args.token, latency=args.latency) as standin:
        events = synthetic_events(
            args.rows, end - timedelta(hours=args.hours), end, ids
        )
        loaded = standin.insert_events(events)
        print(f"loaded {loaded} events in {standin.last_insert_seconds:.2f}s")
        print(f"TB_HOST={standin.url}\nTB_TOKEN={standin.token}")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
