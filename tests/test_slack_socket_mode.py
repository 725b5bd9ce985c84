"""Socket Mode: with SLACK_APP_TOKEN set, commands come down a WebSocket, not HTTP."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.config import Settings
from bot.slack.server import serve
from bot.sources.records import Counts
from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.slack_socket import SocketModeStandIn
from tests.slackbot import BOT_TOKEN, CHANNEL, SIGNING_SECRET

APP_TOKEN = "xapp-1-test-app-token"
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def connected(
    cloudwatch: CloudWatchStandin,
) -> AsyncIterator[tuple[SocketModeStandIn, SlackApiStandIn, int]]:
    """`serve` with an app token, connected to the stand-ins; PORT left unused."""
    stamp = datetime.now(UTC) - timedelta(hours=2)
    cloudwatch.put_counts([(OPUS, stamp, Counts(120, 480_000, 9_000, 3))])
    port = free_port()
    async with SocketModeStandIn() as sockets:
        with SlackApiStandIn(
            token=BOT_TOKEN, app_token=APP_TOKEN, socket_url=sockets.url
        ) as slack:
            settings = Settings(
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                slack_app_token=APP_TOKEN,
                slack_api_url=slack.api_url,
                port=port,
            )
            serving = asyncio.create_task(serve(settings))
            try:
                await sockets.connected()
                yield sockets, slack, port
            finally:
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving


async def test_a_command_over_socket_mode_is_acked_then_answered(
    connected: tuple[SocketModeStandIn, SlackApiStandIn, int],
) -> None:
    """The ack travels back down the WebSocket; the answer lands in the channel."""
    sockets, slack, port = connected

    ack = await sockets.slash_command(
        {"command": "/usage", "text": "opus 6h", "user_id": "U1",
         "channel_id": CHANNEL, "team_id": "T0STANDIN",
         "response_url": slack.response_url("r1"), "trigger_id": "t1"}
    )  # fmt: skip
    (post,) = await slack.wait_for_async("chat.postMessage")

    assert ack == {"response_type": "ephemeral", "text": "Working on `/usage opus 6h`…"}
    (opened,) = slack.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN
    (table,) = [b for b in post.params["blocks"] if b["type"] == "table"]
    assert [c["text"] for c in table["rows"][1]] == [
        "claude-large", "120", "480.0k", "9.0k", "3 (2.4%)", "$2.62"
    ]  # fmt: skip
    async with httpx.AsyncClient(timeout=1) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/slack/events")
