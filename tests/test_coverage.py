"""`/coverage` against moto (billed) and the chDB event store (logged), end to end."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from bot.cli.main import main
from bot.commands.coverage import parse_coverage, run_coverage
from bot.config import Settings, load_settings
from bot.services import build_services
from bot.sources.cloudwatch import CloudWatchMetrics
from bot.sources.records import Counts
from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.tinybird import GatewayEvent, TinybirdStandIn
from bot.windows import resolve_window
from tests.slackbot import BOT_TOKEN, CHANNEL, RunningBot, running_bot

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"
NOVA = "amazon.nova-micro-v1:0"
THIEF = "anthropic.claude-3-7-sonnet-20250219-v1:0"
HOUR_1 = NOW - timedelta(hours=2)  # fully covered
HOUR_2 = NOW - timedelta(hours=1)  # the gap begins


def events(model: str, start: datetime, count: int, tokens: tuple[int, int], **kw):
    return [
        GatewayEvent(
            start_time=start + timedelta(seconds=10 * i),
            model_used=model,
            token_count_prompt_text=tokens[0],
            token_count_completion_text=tokens[1],
            **kw,
        )
        for i in range(count)
    ]


@pytest.fixture
def sources(
    cloudwatch: CloudWatchStandin,
    tinybird: TinybirdStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[CloudWatchStandin, TinybirdStandIn]:
    """Opus at 35% coverage in the last hour, nova whole, one uncatalogued model.

    The event store also holds what must not count: cache hits, a staging
    environment, events served by Vertex, and events outside the window.
    """
    cloudwatch.put_counts(
        [
            (OPUS, HOUR_1 + timedelta(minutes=10), Counts(100, 1_000_000, 100_000, 2)),
            (OPUS, HOUR_2 + timedelta(minutes=10), Counts(300, 3_000_000, 300_000, 0)),
            (NOVA, HOUR_2 + timedelta(minutes=10), Counts(50, 5_000, 500, 0)),
            (THIEF, HOUR_2 + timedelta(minutes=10), Counts(10, 20_000, 2_000, 0)),
        ]
    )
    tinybird.insert_events(
        events(OPUS, HOUR_1, 100, (10_000, 1_000))
        + events(OPUS, HOUR_2, 40, (10_000, 1_000))
        + events(NOVA, HOUR_2, 50, (100, 10))
        + events(OPUS, HOUR_2, 5, (10_000, 1_000), cache_hit=True)
        + events(OPUS, HOUR_2, 3, (10_000, 1_000), environment="staging")
        + events(
            "claude-opus-4-5@20251101",
            HOUR_2,
            4,
            (10_000, 1_000),
            model_provider_used="vertex-ai",
        )
        + events(OPUS, NOW - timedelta(hours=50), 7, (10_000, 1_000))
    )
    monkeypatch.setenv("TB_HOST", tinybird.url)
    monkeypatch.setenv("TB_TOKEN", tinybird.token)
    return cloudwatch, tinybird


def run_json(
    capsys: pytest.CaptureFixture[str], *args: str, tick: bool = False
) -> tuple[int, dict]:
    # boto3's adaptive retry mode refills its rate limiter as time passes: a test
    # that throttles CloudWatch must let the clock tick.
    with time_machine.travel(NOW, tick=tick):
        status = main(["coverage", *args, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out) if out else {}


def by_id(doc: dict) -> dict[str, dict]:
    return {m["provider_model_id"]: m for m in doc["models"]}


def test_all_48h_agrees_with_the_data_to_the_event(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cloudwatch, tinybird = sources

    status, doc = run_json(capsys, "all", "48h")

    assert status == 0
    assert cloudwatch.actions == ["ListMetrics", "GetMetricData"]
    assert tinybird.requests_served == 1
    opus = by_id(doc)[OPUS]
    assert opus["provider"] == {
        "invocations": 400,
        "input_tokens": 4_000_000,
        "output_tokens": 400_000,
    }
    assert opus["gateway"] == {
        "invocations": 140,
        "input_tokens": 1_400_000,
        "output_tokens": 140_000,
    }
    assert opus["invocation_coverage"] == 0.35
    assert opus["input_token_coverage"] == 0.35
    assert opus["uncovered_invocations"] == 260
    # 2.6M input tokens at $5/M and 260k output tokens at $25/M
    assert opus["uncovered_cost_usd"] == 19.5
    assert opus["verdict"] == "likely-unauthorized"
    assert opus["gap_began"] == HOUR_2.isoformat()
    assert opus["series"] == [
        {"start": HOUR_1.isoformat(), "provider": 100, "gateway": 100},
        {"start": HOUR_2.isoformat(), "provider": 300, "gateway": 40},
    ]
    assert by_id(doc)[NOVA]["verdict"] == "ok"
    assert by_id(doc)[NOVA]["invocation_coverage"] == 1.0
    thief = by_id(doc)[THIEF]
    assert (thief["model"], thief["gateway"]["invocations"], thief["verdict"]) == (
        None,
        0,
        "likely-unauthorized",
    )
    assert thief["uncovered_cost_usd"] is None
    assert doc["errors"] == []


def test_one_model_writes_the_gap_chart(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    chart = tmp_path / "gap.png"

    status, doc = run_json(capsys, "opus", "6h", "--plot", str(chart))

    assert status == 0
    assert [m["model"] for m in doc["models"]] == ["claude-large"]
    assert chart.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "hostile",
    [
        "opus'; DROP TABLE generation_event --",
        "opus\u2019 OR 1=1",
        "opus\\' OR 1=1",
        "$(id)",
    ],
    ids=["sql-quote", "unicode-quote", "backslash", "shell"],
)
def test_hostile_text_never_reaches_a_query(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
    hostile: str,
) -> None:
    cloudwatch, tinybird = sources

    with time_machine.travel(NOW, tick=False):
        status = main(["coverage", hostile, "1h", "--json"])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.startswith("model must be one of: all, nova-fast,")
    assert cloudwatch.requests == 0
    assert tinybird.requests_served == 0
    assert tinybird.execute("SELECT count() FROM generation_event").strip() == "209"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            {"status": 403, "error": "Invalid token"},
            "token refused (403): Invalid token; check TB_TOKEN and its scopes",
        ),
        (
            {"status": 400, "error": "Unknown column"},
            "query refused (400): Unknown column",
        ),
    ],
    ids=["403", "400"],
)
def test_event_store_failure_keeps_the_billed_side(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
    fault: dict,
    message: str,
) -> None:
    """Tinybird refuses: exit 1, named, provider figures shown, nothing judged."""
    _, tinybird = sources
    tinybird.fail_next(**fault)

    status, doc = run_json(capsys, "opus", "48h")

    assert status == 1
    assert doc["errors"] == [{"source": "tinybird", "message": message}]
    (opus,) = doc["models"]
    assert opus["provider"]["invocations"] == 400
    assert opus["gateway"] is None
    assert opus["verdict"] == "no-data"


TinybirdFault = Callable[[TinybirdStandIn, pytest.MonkeyPatch], None]


def _timeout_after_slow_answer(tb: TinybirdStandIn, env: pytest.MonkeyPatch) -> None:
    env.setenv("TB_TIMEOUT_SECONDS", "0.2")
    tb.delay_next(30)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            lambda tb, env: tb.fail_next(408),
            "the query ran past Tinybird's time limit (408)",
        ),
        (
            lambda tb, env: tb.fail_next(429, retry_after="120"),
            "rate limited (429); Retry-After must be at most 30s to wait; got 120s",
        ),
        (
            lambda tb, env: tb.fail_next(500, times=4, retry_after="0"),
            "server error (500) after 3 retries",
        ),
        (_timeout_after_slow_answer, "no answer within 0.2s"),
        (
            lambda tb, env: tb.malform_next(),
            "answer is not valid JSON: Expecting value: line 1 column 23 (char 22)",
        ),
    ],
    ids=["408", "429-too-long", "500-thrice", "slow", "malformed"],
)
def test_every_tinybird_fault_is_a_named_partial_answer(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fault: TinybirdFault,
    message: str,
) -> None:
    """Whatever goes wrong at Tinybird, the billed side is shown and the cause named."""
    _, tinybird = sources
    fault(tinybird, monkeypatch)

    status, doc = run_json(capsys, "opus", "48h")

    assert status == 1
    assert doc["errors"] == [{"source": "tinybird", "message": message}]
    (opus,) = doc["models"]
    assert (opus["provider"]["invocations"], opus["gateway"]) == (400, None)
    assert opus["verdict"] == "no-data"


def test_a_429_is_retried_after_the_wait_it_asks_for(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Rate limited once with Retry-After: the answer is whole, after one retry."""
    _, tinybird = sources
    tinybird.fail_next(429, retry_after="0")

    status, doc = run_json(capsys, "opus", "48h")

    assert status == 0
    assert [r.status for r in tinybird.requests] == [429, 200]
    assert doc["models"][0]["gateway"]["invocations"] == 140


def test_terminal_says_coverage_is_not_judged_without_the_gateway(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing side is never read as covered traffic."""
    _, tinybird = sources
    tinybird.fail_next(403, error="Invalid token")

    with time_machine.travel(NOW, tick=False):
        status = main(["coverage", "opus", "48h"])

    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[-2:] == [
        "! Coverage not judged: no answer from tinybird. What the other source "
        "gave is below.",
        "! tinybird: token refused (403): Invalid token; check TB_TOKEN and its scopes",
    ]
    row = next(line for line in lines if line.startswith("claude-large"))
    assert row.split() == ["claude-large", "400", "n/a", "n/a", "n/a", "400",
                           "n/a", "no-data"]  # fmt: skip


@pytest.mark.parametrize(
    ("words", "actions", "opus_billed"),
    [
        ("opus 48h", ["GetMetricData"], None),
        ("all 48h", ["ListMetrics", "GetMetricData"], 400),
    ],
    ids=["one-model", "all-models"],
)
def test_cloudwatch_throttling_is_a_named_partial_answer(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    words: str,
    actions: list[str],
    opus_billed: int | None,
) -> None:
    """Throttled past its retries, CloudWatch is named and the gateway side kept.

    For `all`, only the search for uncatalogued models fails: the catalogued
    ones are still billed and judged.
    """
    cloudwatch, _ = sources
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cloudwatch.fail_next("Throttling", "Rate exceeded")

    status, doc = run_json(capsys, *words.split(), tick=True)

    assert status == 1
    assert cloudwatch.actions == actions
    assert doc["errors"] == [
        {"source": "cloudwatch", "message": "Throttling: Rate exceeded"}
    ]
    opus = by_id(doc)[OPUS]
    billed = opus["provider"] and opus["provider"]["invocations"]
    assert (billed, opus["gateway"]["invocations"]) == (opus_billed, 140)


def test_unreachable_cloudwatch_keeps_the_gateway_side(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    status, doc = run_json(capsys, "opus", "48h")

    assert status == 1
    assert [e["source"] for e in doc["errors"]] == ["cloudwatch"]
    (opus,) = doc["models"]
    assert opus["provider"] is None
    assert opus["gateway"]["invocations"] == 140
    assert opus["verdict"] == "no-data"


@pytest.fixture
def slack() -> Iterator[SlackApiStandIn]:
    with SlackApiStandIn(token=BOT_TOKEN) as standin:
        yield standin


@pytest.fixture
async def bot(
    sources: tuple[CloudWatchStandin, TinybirdStandIn], slack: SlackApiStandIn
) -> AsyncIterator[RunningBot]:
    with time_machine.travel(NOW, tick=True):
        async with running_bot(slack, timezone="Europe/Berlin") as running:
            yield running


async def test_slack_coverage_summary_table_and_chart(
    bot: RunningBot, slack: SlackApiStandIn
) -> None:
    await bot.command("coverage", "opus 6h")

    (post,) = await slack.wait_for_async("chat.postMessage")
    (upload,) = await slack.wait_for_async("files.completeUploadExternal")

    assert post.params["channel"] == CHANNEL
    assert post.params["text"] == (
        ":rotating_light: *claude-large*: 35.0% of billed calls passed the gateway "
        "(likely-unauthorized); 260 uncovered calls, $19.50, "
        "gap since Thu 03 Dec 12:00 CET."
    )
    (table,) = [b for b in post.params["blocks"] if b["type"] == "table"]
    assert [c["text"] for c in table["rows"][1]] == [
        "claude-large", "400", "140", "35.0%", "35.0%", "260", "$19.50",
        "likely-unauthorized",
    ]  # fmt: skip
    assert (upload.params["channel_id"], "thread_ts" in upload.params) == (
        CHANNEL,
        False,
    )
    (stored,) = slack.uploads.values()
    assert stored.content is not None and stored.content.startswith(b"\x89PNG")


async def test_slack_coverage_opus_1h_posts_the_figures_and_the_chart(
    bot: RunningBot, slack: SlackApiStandIn
) -> None:
    """The incident's question in Slack: figures to the event, chart in channel."""
    response = await bot.command("coverage", "opus 1h")

    (post,) = await slack.wait_for_async("chat.postMessage")
    (upload,) = await slack.wait_for_async("files.completeUploadExternal")

    assert response.json()["text"] == "Working on `/coverage opus 1h`…"
    assert post.params["text"] == (
        ":rotating_light: *claude-large*: 13.3% of billed calls passed the gateway "
        "(likely-unauthorized); 260 uncovered calls, $19.50, "
        "gap since Thu 03 Dec 12:10 CET."
    )
    (table,) = [b for b in post.params["blocks"] if b["type"] == "table"]
    assert [c["text"] for c in table["rows"][1]] == [
        "claude-large", "300", "40", "13.3%", "13.3%", "260", "$19.50",
        "likely-unauthorized",
    ]  # fmt: skip
    assert upload.params["channel_id"] == CHANNEL
    assert "thread_ts" not in upload.params
    (stored,) = slack.uploads.values()
    assert stored.filename == "coverage.png"
    assert stored.content is not None and stored.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("break_it", "summary", "warning"),
    [
        (
            lambda cw, tb: tb.fail_next(403, error="Invalid token"),
            ":warning: Coverage not judged: no answer from tinybird. What the other "
            "source gave is below.",
            ":warning: *tinybird*: token refused (403): Invalid token; check "
            "TB_TOKEN and its scopes",
        ),
        (
            lambda cw, tb: cw.fail_next("Throttling", "Rate exceeded", times=4),
            ":warning: Coverage not judged: no answer from cloudwatch. What the "
            "other source gave is below.",
            ":warning: *cloudwatch*: Throttling: Rate exceeded",
        ),
    ],
    ids=["tinybird-403", "cloudwatch-throttled"],
)
async def test_slack_partial_answer_names_the_failed_source(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
    slack: SlackApiStandIn,
    break_it: Callable[[CloudWatchStandin, TinybirdStandIn], None],
    summary: str,
    warning: str,
) -> None:
    """One source down: the channel reads which one and why, and no traceback."""
    break_it(*sources)
    with time_machine.travel(NOW, tick=True):
        async with running_bot(slack, aws_max_attempts=1) as bot:
            await bot.command("coverage", "opus 48h")
            (post,) = await slack.wait_for_async("chat.postMessage")

    texts = [b["text"]["text"] for b in post.params["blocks"] if b["type"] == "section"]
    assert post.params["text"] == summary
    assert texts == [summary, f"Partial answer.\n{warning}"]
    assert "Traceback" not in str(post.params)
    assert slack.calls_to("files.completeUploadExternal") == []


async def test_both_sources_are_asked_before_either_answers(
    sources: tuple[CloudWatchStandin, TinybirdStandIn],
) -> None:
    """Both stand-ins hold their request: only a concurrent command has asked both."""
    cloudwatch, tinybird = sources
    cloudwatch.hold()
    tinybird.delay_next(30)
    services = build_services(load_settings())
    request = parse_coverage("opus 48h", services.settings, now=NOW)

    answer = asyncio.create_task(run_coverage(request, services))
    both_waiting = await asyncio.to_thread(
        until, lambda: cloudwatch.actions == ["GetMetricData"] and pending(tinybird)
    )
    cloudwatch.release()
    tinybird.release_delays()
    report = await answer

    assert both_waiting
    (opus,) = report.models
    assert opus.provider is not None and opus.gateway is not None
    assert (opus.provider.invocations, opus.gateway.invocations) == (400, 140)


def pending(tinybird: TinybirdStandIn) -> bool:
    """Tinybird holds one request and has not answered it yet."""
    return [served.status for served in tinybird.requests] == [None]


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether `condition` comes true within `timeout` (run in a worker thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


async def test_past_125_models_the_requests_go_out_together(
    cloudwatch: CloudWatchStandin,
) -> None:
    """520 queries need two GetMetricData requests; both are in flight at once."""
    ids = [f"bench.model-{index}-v1:0" for index in range(130)]
    cloudwatch.put_counts(
        [
            (ids[0], HOUR_2 + timedelta(minutes=10), Counts(3, 30, 3)),
            (ids[-1], HOUR_2 + timedelta(minutes=10), Counts(7, 70, 7)),
        ]
    )
    metrics = CloudWatchMetrics(
        Settings(), endpoint_url=cloudwatch.url, credentials=("standin", "standin")
    )
    window = resolve_window("6h", now=NOW)
    cloudwatch.hold()

    answer = asyncio.create_task(metrics.usage(window, ids))
    both_in_flight = await asyncio.to_thread(
        until, lambda: cloudwatch.actions == ["GetMetricData"] * 2
    )
    cloudwatch.release()
    points = await answer

    assert both_in_flight
    assert {(p.model_id, p.counts.invocations) for p in points} == {
        (ids[0], 3),
        (ids[-1], 7),
    }
