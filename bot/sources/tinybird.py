"""Tinybird's Query API (`/v0/sql`): run one SELECT and get its rows back as JSON."""

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import ConfigError, SourceError, SourceTimeout

log = logging.getLogger(__name__)

SOURCE = "tinybird"
# Longer queries go in a POST body: proxies and Tinybird cap the URL length.
MAX_GET_QUERY = 4000
# How many characters of Tinybird's own error text a message carries.
MAX_ERROR_TEXT = 300

_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+\w+\s*$", re.IGNORECASE)
# ClickHouse writes these as quoted strings unless told otherwise.
_WIDE_INTEGER = re.compile(r"^(Nullable\()?U?Int(64|128|256)\)?$")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Column:
    """One result column as Tinybird describes it in `meta`."""

    name: str
    type: str


@dataclass(frozen=True)
class QueryResult:
    """The rows of one query, with 64-bit integers already turned into `int`."""

    meta: list[Column]
    data: list[dict[str, Any]]

    @property
    def rows(self) -> int:
        return len(self.data)


class TinybirdClient:
    """Runs SQL on Tinybird with a timeout, bounded retries and named errors."""

    def __init__(
        self,
        host: str,
        token: SecretStr,
        *,
        timeout: float = 20.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.host,
            timeout=httpx.Timeout(timeout),
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, sleep: Sleep = asyncio.sleep) -> Self:
        """A client for `TB_HOST` and `TB_TOKEN`; `ConfigError` without a token."""
        if settings.tb_token is None:
            raise ConfigError("TB_TOKEN must be set to read gateway events; got none")
        return cls(
            settings.tb_host,
            settings.tb_token,
            timeout=settings.tb_timeout_seconds,
            sleep=sleep,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def query(self, sql: str, *, name: str = "sql") -> QueryResult:
        """Rows of one SELECT; `name` labels the log line instead of the SQL itself."""
        text = as_json_query(sql)
        started = time.monotonic()
        outcome: dict[str, Any] = {"status": None, "rows": None, "attempts": 0}
        try:
            response = await self._send(text, outcome)
            result = parse_result(response.content)
            outcome["rows"] = result.rows
            return result
        except SourceError as exc:
            outcome["error"] = type(exc).__name__
            raise
        finally:
            log.info(
                "backend call",
                extra={
                    "source": SOURCE,
                    "call": name,
                    "method": "POST" if len(text) > MAX_GET_QUERY else "GET",
                    "ms": round((time.monotonic() - started) * 1000),
                    **outcome,
                },
            )

    async def _send(self, text: str, outcome: dict[str, Any]) -> httpx.Response:
        retries = 0
        while True:
            outcome["attempts"] = retries + 1
            response = await self._request_once(text, retries)
            if response is not None:
                outcome["status"] = response.status_code
                if response.is_success:
                    return response
                wait = self._retry_wait(response, retries)
            else:
                wait = self._backoff(retries)
            retries += 1
            await self._sleep(wait)

    async def _request_once(self, text: str, retries: int) -> httpx.Response | None:
        """The response, or None after a connection error worth another try."""
        try:
            if len(text) > MAX_GET_QUERY:
                return await self._http.post("/v0/sql", data={"q": text})
            return await self._http.get("/v0/sql", params={"q": text})
        except httpx.TimeoutException as exc:
            raise SourceTimeout(SOURCE, f"no answer within {self.timeout:g}s") from exc
        except httpx.TransportError as exc:
            if retries >= self.max_retries:
                raise SourceError(
                    SOURCE,
                    f"cannot reach {self.host} after {retries} retries: "
                    f"{type(exc).__name__}",
                ) from exc
            return None

    def _retry_wait(self, response: httpx.Response, retries: int) -> float:
        """How long to wait before retrying, or the named error when not to retry."""
        status = response.status_code
        if status == 408:
            raise SourceTimeout(
                SOURCE, "the query ran past Tinybird's time limit (408)"
            )
        if status not in (429, 500, 502, 503, 504):
            raise _status_error(response)

        what = "rate limited" if status == 429 else "server error"
        if retries >= self.max_retries:
            raise SourceError(SOURCE, f"{what} ({status}) after {retries} retries")
        asked = _retry_after(response.headers.get("Retry-After"))
        if asked is None:
            return self._backoff(retries)
        if asked > self.max_retry_wait:
            raise SourceError(
                SOURCE,
                f"{what} ({status}); Retry-After must be at most "
                f"{self.max_retry_wait:g}s to wait; got {asked:g}s",
            )
        return asked

    def _backoff(self, retries: int) -> float:
        return float(min(0.5 * 2**retries, self.max_retry_wait))


def as_json_query(sql: str) -> str:
    """The query with any trailing `;` or FORMAT clause replaced by `FORMAT JSON`."""
    body = sql.strip().rstrip(";").rstrip()
    body = _TRAILING_FORMAT.sub("", body)
    return f"{body}\nFORMAT JSON"


def parse_result(content: bytes) -> QueryResult:
    """Read Tinybird's JSON answer; `SourceError` naming what is wrong with it."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(SOURCE, f"answer is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        kind = (
            sorted(document) if isinstance(document, dict) else type(document).__name__
        )
        raise SourceError(
            SOURCE, f"answer must be an object with a 'data' list; got {kind}"
        )

    meta = [
        Column(str(item.get("name")), str(item.get("type")))
        for item in document.get("meta") or []
        if isinstance(item, dict)
    ]
    wide = [column.name for column in meta if _WIDE_INTEGER.match(column.type)]
    data = [_widen(row, wide) for row in document["data"]]
    return QueryResult(meta=meta, data=data)


def _widen(row: Any, wide: list[str]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise SourceError(SOURCE, f"each row must be an object; got {row!r:.60}")
    for key in wide:
        value = row.get(key)
        if isinstance(value, str):
            try:
                row[key] = int(value)
            except ValueError as exc:
                raise SourceError(
                    SOURCE, f"column {key!r} must hold integers; got {value!r:.40}"
                ) from exc
    return row


def _status_error(response: httpx.Response) -> SourceError:
    status = response.status_code
    detail = _error_text(response)
    if status in (401, 403):
        return SourceError(
            SOURCE, f"token refused ({status}): {detail}; check TB_TOKEN and its scopes"
        )
    if status == 400:
        return SourceError(SOURCE, f"query refused (400): {detail}")
    return SourceError(SOURCE, f"unexpected status {status}: {detail}")


def _error_text(response: httpx.Response) -> str:
    try:
        document = response.json()
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        text = document["error"]
    else:
        text = response.text or response.reason_phrase
    return " ".join(text.split())[:MAX_ERROR_TEXT]


def _retry_after(header: str | None) -> float | None:
    """Seconds from a `Retry-After` header (seconds or HTTP date); None if unusable."""
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - time.time())
