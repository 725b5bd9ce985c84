"""`/usage` end to end: signed HTTP to the Bolt app, answers in the Slack stand-in."""

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from bot.sources.records import Counts
from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.slack_requests import signature
from tests.slackbot import BOT_TOKEN, CHANNEL, SIGNING_SECRET, RunningBot, running_bot

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"


@pytest.fixture
def frozen() -> Iterator[None]:
    # Time moves (Bolt and aiohttp need it to) but starts at a known instant.
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def slack() -> Iterator[SlackApiStandIn]:
    with SlackApiStandIn(token=BOT_TOKEN) as standin:
        yield standin


@pytest.fixture
async def bot(
    frozen: None, slack: SlackApiStandIn, cloudwatch: CloudWatchStandin
) -> AsyncIterator[RunningBot]:
    cloudwatch.put_counts(
        [
            (
                OPUS,
                NOW - timedelta(hours=2, minutes=-5),
                Counts(120, 480_000, 9_000, 3),
            ),
            (OPUS, NOW - timedelta(hours=1, minutes=-5), Counts(80, 320_000, 6_000, 1)),
        ]
    )
    async with running_bot(slack) as running:
        yield running


def table_rows(blocks: list[dict]) -> list[list[str]]:
    (table,) = [b for b in blocks if b["type"] == "table"]
    return [[cell["text"] for cell in row] for row in table["rows"]]


async def test_usage_acks_then_posts_figures_and_chart(
    bot: RunningBot, slack: SlackApiStandIn
) -> None:
    """The ack says it is working; the channel gets the table, then the chart."""
    response = await bot.command("usage", "opus 6h")

    assert response.status_code == 200
    assert response.json() == {
        "response_type": "ephemeral",
        "text": "Working on `/usage opus 6h`…",
    }
    (post,) = await slack.wait_for_async("chat.postMessage")
    (upload,) = await slack.wait_for_async("files.completeUploadExternal")

    assert post.params["channel"] == CHANNEL
    assert table_rows(post.params["blocks"]) == [
        ["model", "invocations", "input tok", "output tok", "throttles", "cost"],
        ["claude-large", "200", "800.0k", "15.0k", "4 (2.0%)", "$4.38"],
        ["total", "200", "800.0k", "15.0k", "4", "$4.38"],
    ]
    assert upload.params["channel_id"] == CHANNEL
    assert "thread_ts" not in upload.params
    (stored,) = slack.uploads.values()
    assert stored.content is not None and stored.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "opus 99x",
            "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w; got '99x'",
        ),
        (
            "all 456d",
            "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w, at most 455d"
            " (CloudWatch's retention); got '456d'",
        ),
        (
            "gpt-9",
            "model must be one of: all, nova-fast, nova-lite, claude-large, claude,"
            " claude-fast, chickytutor, opus-4.1; got 'gpt-9'",
        ),
    ],
    ids=["bad-window", "beyond-retention", "unknown-model"],
)
async def test_bad_input_gets_an_ephemeral_hint_and_costs_nothing(
    bot: RunningBot,
    slack: SlackApiStandIn,
    cloudwatch: CloudWatchStandin,
    text: str,
    error: str,
) -> None:
    response = await bot.command("usage", text)

    assert response.json() == {
        "response_type": "ephemeral",
        "text": f"{error}\n"
        "Usage: `/usage [MODEL|all] [WINDOW]   e.g. /usage opus 1h, /usage all 48h`",
    }
    assert cloudwatch.requests == 0
    # Bolt checks the bot token once (auth.test); nothing is posted or uploaded.
    assert {call.method for call in slack.calls} <= {"auth.test"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "v0=deadbeef"},
        {"X-Slack-Request-Timestamp": "{stale}", "X-Slack-Signature": "{stale_sig}"},
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "{other_secret}"},
    ],
    ids=["missing", "bad", "stale", "wrong-secret"],
)
async def test_unsigned_or_badly_signed_requests_are_refused(
    bot: RunningBot,
    slack: SlackApiStandIn,
    cloudwatch: CloudWatchStandin,
    headers: dict[str, str],
) -> None:
    body = b"command=%2Fusage&text=all&user_id=UADMIN&channel_id=CINCIDENT"
    now, stale = int(time.time()), int(time.time()) - 10 * 60
    values = {
        "now": str(now),
        "stale": str(stale),
        "stale_sig": signature(body, stale, SIGNING_SECRET),
        "other_secret": signature(body, now, "not-the-secret"),
    }
    filled = {k: v.format(**values) for k, v in headers.items()}

    response = await bot.post(body, filled)

    assert response.status_code == 401
    assert cloudwatch.requests == 0
    assert slack.calls_to("chat.postMessage") == []


async def test_source_failure_is_a_partial_answer_without_traceback(
    bot: RunningBot, slack: SlackApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CloudWatch unreachable: the channel is told which source failed, and why."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    async with running_bot(slack, aws_max_attempts=1) as broken:
        await broken.command("usage", "all 1h")

        (post,) = await slack.wait_for_async("chat.postMessage")

    text = str(post.params["blocks"])
    assert "Partial answer." in text
    assert "*cloudwatch*: Could not connect to the endpoint URL" in text
    assert "Traceback" not in text


async def test_many_models_fit_block_kit_limits(
    bot: RunningBot, slack: SlackApiStandIn, cloudwatch: CloudWatchStandin
) -> None:
    """130 models the catalog does not know: monospace sections, all within limits."""
    thieves = [f"vendor.model-{i:03d}-v1:0" for i in range(130)]
    stamp = NOW - timedelta(hours=3)
    cloudwatch.put_counts(
        [(t, stamp, Counts(1_000 + i)) for i, t in enumerate(thieves)]
    )

    await bot.command("usage", "all 48h")
    (post,) = await slack.wait_for_async("chat.postMessage")

    blocks = post.params["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    notes = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert len(blocks) <= 50
    assert not [b for b in blocks if b["type"] == "table"]  # 132 rows: over 100
    assert all(len(text) <= 3000 for text in texts + notes)
    code = "".join(texts)
    assert all(f"unknown: {thief}" in code for thief in thieves)
    total = 200 + sum(1_000 + i for i in range(130))
    last_row = code.removesuffix("```").splitlines()[-1].split()
    assert last_row == ["total", f"{total:,}", "800.0k", "15.0k", "4", "$4.38"]
    assert notes[0].startswith("Not in the catalog (billed, price unknown): vendor.")
    assert notes[0].endswith(" and 110 more")
    assert cloudwatch.actions == ["ListMetrics", "GetMetricData", "GetMetricData"]


async def test_a_chart_slack_refuses_to_take_is_named_to_the_asker(
    bot: RunningBot, slack: SlackApiStandIn
) -> None:
    """The figures are in the channel; the asker learns why the chart is not."""
    slack.fail_next("files.completeUploadExternal", "not_in_channel")

    await bot.command("usage", "opus 6h", response_id="asker")
    (said,) = await slack.wait_for_async("response_url")

    (post,) = slack.calls_to("chat.postMessage")
    assert "claude-large" in str(post.params["blocks"])
    assert said.params == {
        "response_type": "ephemeral",
        "text": "The chart could not be posted (not_in_channel); invite the bot to"
        " the channel to get charts, or use `usage-bot … --plot` in a terminal.",
    }


async def test_a_channel_the_bot_cannot_post_in_gets_the_answer_by_response_url(
    bot: RunningBot, slack: SlackApiStandIn
) -> None:
    slack.fail_next("chat.postMessage", "not_in_channel")

    await bot.command("usage", "opus 6h", response_id="asker")
    answer, note = await slack.wait_for_async("response_url", 2)

    assert answer.params["response_type"] == "in_channel"
    assert table_rows(answer.params["blocks"])[1][:2] == ["claude-large", "200"]
    assert note.params["response_type"] == "ephemeral"
    assert note.params["text"].startswith("The chart could not be posted (not_in_ch")
    assert slack.calls_to("files.getUploadURLExternal") == []


async def test_the_ack_does_not_wait_for_cloudwatch(
    bot: RunningBot, slack: SlackApiStandIn, cloudwatch: CloudWatchStandin
) -> None:
    """Slack's 3 seconds hold however slow the backend: the work comes after."""
    cloudwatch.delay_seconds = 1.0

    response = await bot.command("usage", "opus 6h")

    assert response.json()["text"] == "Working on `/usage opus 6h`…"
    assert slack.calls_to("chat.postMessage") == []  # CloudWatch has not answered
    (post,) = await slack.wait_for_async("chat.postMessage")
    assert table_rows(post.params["blocks"])[1][1] == "200"
