"""The Tinybird client against the stand-in over HTTP: rows, methods, named errors."""

import logging
import socket
from datetime import UTC, datetime

import pytest
import time_machine
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import ConfigError, SourceError, SourceTimeout
from bot.sources.tinybird import Column, TinybirdClient, as_json_query
from bot.standins.tinybird import TinybirdStandIn
from tests.fixtures_tinybird import RecordedSleeps

BIG = 2**63 + 5


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "bare"])
async def test_64_bit_integers_arrive_as_int(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient, quoted: bool
) -> None:
    """UInt64 values parse to int whether ClickHouse quotes them or not."""
    tinybird.quote_64bit = quoted

    result = await tinybird_client.query(f"SELECT toUInt64({BIG}) AS n, 'a' AS s")

    assert result.meta == [Column("n", "UInt64"), Column("s", "String")]
    assert result.data == [{"n": BIG, "s": "a"}]
    assert result.rows == 1


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1\nFORMAT JSON"),
        ("  SELECT 1 ;\n", "SELECT 1\nFORMAT JSON"),
        ("SELECT 1 FORMAT CSV", "SELECT 1\nFORMAT JSON"),
        ("select 1 format JSON;", "select 1\nFORMAT JSON"),
        ("SELECT 'FORMAT CSV'", "SELECT 'FORMAT CSV'\nFORMAT JSON"),
    ],
    ids=["plain", "semicolon", "other-format", "json-already", "format-in-literal"],
)
def test_queries_always_ask_for_json(sql: str, expected: str) -> None:
    """Whatever the caller wrote at the end, the query asks for FORMAT JSON."""
    assert as_json_query(sql) == expected


async def test_short_query_goes_by_get(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """A short query travels in the URL, ending in FORMAT JSON."""
    await tinybird_client.query("SELECT 1 AS one")

    [served] = tinybird.requests
    assert (served.method, served.query, served.status) == (
        "GET",
        "SELECT 1 AS one\nFORMAT JSON",
        200,
    )


async def test_long_query_goes_by_post(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """A query over 4000 characters travels in a form body and arrives intact."""
    padding = "x" * 5000

    result = await tinybird_client.query(f"SELECT length('{padding}') AS n")

    assert result.data == [{"n": 5000}]
    assert [request.method for request in tinybird.requests] == ["POST"]


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (
            400,
            "Missing columns: 'nope'",
            "tinybird: query refused (400): Missing columns: 'nope'",
        ),
        (
            401,
            "token expired",
            "tinybird: token refused (401): token expired; check TB_TOKEN and its "
            "scopes",
        ),
        (
            403,
            "not allowed to read generation_event",
            "tinybird: token refused (403): not allowed to read generation_event; "
            "check TB_TOKEN and its scopes",
        ),
        (404, None, "tinybird: unexpected status 404: injected failure 404"),
    ],
    ids=["400", "401", "403", "404"],
)
async def test_refusals_name_what_tinybird_said(
    tinybird: TinybirdStandIn,
    tinybird_client: TinybirdClient,
    tinybird_sleeps: RecordedSleeps,
    status: int,
    error: str | None,
    expected: str,
) -> None:
    """A refused query is not retried and its error carries Tinybird's text."""
    tinybird.fail_next(status, error=error)

    with pytest.raises(SourceError) as caught:
        await tinybird_client.query("SELECT 1")

    assert type(caught.value) is SourceError
    assert str(caught.value) == expected
    assert (tinybird.requests_served, tinybird_sleeps) == (1, [])


async def test_bad_sql_surfaces_clickhouse_error(
    tinybird_client: TinybirdClient,
) -> None:
    """ClickHouse's own complaint about a query reaches the error message."""
    with pytest.raises(
        SourceError, match=r"^tinybird: query refused \(400\): Code: 47"
    ):
        await tinybird_client.query("SELECT no_such_column FROM generation_event")


async def test_wrong_token_is_refused(tinybird: TinybirdStandIn) -> None:
    """The stand-in checks the bearer token like Tinybird does."""
    client = TinybirdClient(tinybird.url, SecretStr("not-the-token"), timeout=2.0)

    async with client:
        with pytest.raises(SourceError) as caught:
            await client.query("SELECT 1")

    assert str(caught.value) == (
        "tinybird: token refused (403): invalid authentication token; "
        "check TB_TOKEN and its scopes"
    )


async def test_writes_are_refused_and_change_nothing(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """Only one read-only statement runs, as on Tinybird."""
    with pytest.raises(SourceError) as caught:
        await tinybird_client.query("SELECT 1; DROP TABLE generation_event")

    assert str(caught.value) == (
        "tinybird: query refused (400): multi-statements are not allowed"
    )
    assert tinybird.execute("EXISTS TABLE generation_event") == "1\n"


async def test_server_side_timeout_is_a_timeout(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """A 408 means the query ran too long on Tinybird: no retry."""
    tinybird.fail_next(408)

    with pytest.raises(SourceTimeout) as caught:
        await tinybird_client.query("SELECT 1")

    assert str(caught.value) == (
        "tinybird: the query ran past Tinybird's time limit (408)"
    )
    assert tinybird.requests_served == 1


async def test_client_timeout_is_a_timeout(tinybird: TinybirdStandIn) -> None:
    """An answer slower than the configured timeout gives SourceTimeout."""
    tinybird.delay_next(5.0)
    client = TinybirdClient(tinybird.url, SecretStr(tinybird.token), timeout=0.05)

    async with client:
        with pytest.raises(SourceTimeout) as caught:
            await client.query("SELECT 1")

    assert str(caught.value) == "tinybird: no answer within 0.05s"


@pytest.mark.parametrize(
    ("status", "retry_after", "failures", "waits"),
    [
        (429, "2", 1, [2.0]),
        (429, None, 2, [0.5, 1.0]),
        (500, None, 3, [0.5, 1.0, 2.0]),
        (503, "1", 1, [1.0]),
    ],
    ids=["429-retry-after", "429-backoff", "500-thrice", "503-retry-after"],
)
async def test_transient_failures_are_retried(
    tinybird: TinybirdStandIn,
    tinybird_client: TinybirdClient,
    tinybird_sleeps: RecordedSleeps,
    status: int,
    retry_after: str | None,
    failures: int,
    waits: list[float],
) -> None:
    """Rate limits and server errors are retried after the wait they ask for."""
    tinybird.fail_next(status, times=failures, retry_after=retry_after)

    result = await tinybird_client.query("SELECT 7 AS n")

    assert result.data == [{"n": 7}]
    assert tinybird_sleeps == waits
    assert tinybird.requests_served == failures + 1


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "1", "tinybird: rate limited (429) after 3 retries"),
        (502, None, "tinybird: server error (502) after 3 retries"),
    ],
    ids=["429", "502"],
)
async def test_retries_are_bounded(
    tinybird: TinybirdStandIn,
    tinybird_client: TinybirdClient,
    tinybird_sleeps: RecordedSleeps,
    status: int,
    retry_after: str | None,
    expected: str,
) -> None:
    """After three retries the client gives up with a named error."""
    tinybird.fail_next(status, times=10, retry_after=retry_after)

    with pytest.raises(SourceError) as caught:
        await tinybird_client.query("SELECT 1")

    assert str(caught.value) == expected
    assert (tinybird.requests_served, len(tinybird_sleeps)) == (4, 3)


async def test_too_long_retry_after_is_not_waited(
    tinybird: TinybirdStandIn,
    tinybird_client: TinybirdClient,
    tinybird_sleeps: RecordedSleeps,
) -> None:
    """A Retry-After beyond the bound fails at once rather than stalling a command."""
    tinybird.fail_next(429, retry_after="120")

    with pytest.raises(SourceError) as caught:
        await tinybird_client.query("SELECT 1")

    assert str(caught.value) == (
        "tinybird: rate limited (429); Retry-After must be at most 30s to wait; "
        "got 120s"
    )
    assert (tinybird.requests_served, tinybird_sleeps) == (1, [])


async def test_retry_after_as_http_date(
    tinybird: TinybirdStandIn,
    tinybird_client: TinybirdClient,
    tinybird_sleeps: RecordedSleeps,
) -> None:
    """A Retry-After given as a date is waited until that moment."""
    tinybird.fail_next(429, retry_after="Sat, 01 Mar 2025 12:00:05 GMT")

    with time_machine.travel(datetime(2025, 3, 1, 12, 0, tzinfo=UTC), tick=False):
        await tinybird_client.query("SELECT 1")

    assert tinybird_sleeps == [5.0]


async def test_malformed_json_is_named(
    tinybird: TinybirdStandIn, tinybird_client: TinybirdClient
) -> None:
    """A 200 whose body is not JSON is an error that says so."""
    tinybird.malform_next()

    with pytest.raises(SourceError) as caught:
        await tinybird_client.query("SELECT 1")

    assert str(caught.value) == (
        "tinybird: answer is not valid JSON: Expecting value: line 1 column 23 "
        "(char 22)"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"rows": 0}', "tinybird: answer must be an object with a 'data' list; "
         "got ['rows']"),
        (b"[1, 2]", "tinybird: answer must be an object with a 'data' list; got list"),
        (b'{"data": [1]}', "tinybird: each row must be an object; got 1"),
        (b'{"meta": [{"name": "n", "type": "UInt64"}], "data": [{"n": "x"}]}',
         "tinybird: column 'n' must hold integers; got 'x'"),
    ],
    ids=["no-data", "list", "row-not-object", "bad-integer"],
)  # fmt: skip
async def test_json_of_the_wrong_shape_is_named(
    tinybird: TinybirdStandIn,
    tinybird_client: TinybirdClient,
    body: bytes,
    expected: str,
) -> None:
    """JSON that is not a query result gives an error naming what is wrong."""
    tinybird.malform_next(body=body)

    with pytest.raises(SourceError) as caught:
        await tinybird_client.query("SELECT 1")

    assert str(caught.value) == expected


async def test_unreachable_host_is_retried_then_named(
    tinybird_sleeps: RecordedSleeps,
) -> None:
    """A refused connection is retried a bounded number of times, then named."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = TinybirdClient(host, SecretStr("t"), timeout=1.0, sleep=tinybird_sleeps)

    async with client:
        with pytest.raises(SourceError) as caught:
            await client.query("SELECT 1")

    assert str(caught.value) == (
        f"tinybird: cannot reach {host} after 3 retries: ConnectError"
    )
    assert tinybird_sleeps == [0.5, 1.0, 2.0]


async def test_one_log_line_without_token_or_sql(
    tinybird_client: TinybirdClient,
    tinybird: TinybirdStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each call logs its outcome once, and never the token or the query."""
    caplog.set_level(logging.INFO, logger="bot.sources.tinybird")

    await tinybird_client.query("SELECT 'secret-ish' AS s", name="probe")

    [record] = [r for r in caplog.records if r.name == "bot.sources.tinybird"]
    fields = vars(record)
    assert (fields["source"], fields["call"], fields["method"]) == (
        "tinybird",
        "probe",
        "GET",
    )
    assert (fields["status"], fields["rows"], fields["attempts"]) == (200, 1, 1)
    text = repr(fields)
    assert tinybird.token not in text
    assert "secret-ish" not in text


def test_settings_without_token_are_refused() -> None:
    """A missing TB_TOKEN is a configuration error, not a failed call later."""
    with pytest.raises(ConfigError) as caught:
        TinybirdClient.from_settings(Settings())

    assert str(caught.value) == (
        "TB_TOKEN must be set to read gateway events; got none"
    )
