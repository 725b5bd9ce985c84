"""Driving the real Bolt app over HTTP with signed requests, as Slack does."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from bot.config import Settings
from bot.services import Services, build_services
from bot.slack.app import build_app
from bot.slack.server import start_http
from bot.standins import slack_requests
from bot.standins.slack_api import SlackApiStandIn

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
ADMIN = "UADMIN"
CHANNEL = "CINCIDENT"


@dataclass
class RunningBot:
    """The Bolt app listening on a free port, and the Slack stand-in it talks to."""

    url: str
    slack: SlackApiStandIn
    services: Services
    http: httpx.AsyncClient

    async def post(
        self, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.http.post(self.url, content=body, headers=headers or {})

    async def signed(self, form: dict[str, str]) -> httpx.Response:
        return await slack_requests.post_signed(
            self.http, self.url, form, SIGNING_SECRET
        )

    async def command(
        self, name: str, text: str = "", user: str = ADMIN, response_id: str = "r1"
    ) -> httpx.Response:
        return await self.signed(
            slack_requests.slash_command(
                name,
                text,
                user=user,
                channel=CHANNEL,
                response_url=self.slack.response_url(response_id),
                trigger_id="trigger-1",
            )
        )


@asynccontextmanager
async def running_bot(
    slack: SlackApiStandIn, **settings: Any
) -> AsyncIterator[RunningBot]:
    """Build the app exactly as `usage-bot serve` does, on 127.0.0.1:0."""
    config = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        bot_admins=[ADMIN],
        **settings,
    )
    services = build_services(config)
    runner, port = await start_http(build_app(config, services), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            yield RunningBot(
                f"http://127.0.0.1:{port}/slack/events", slack, services, http
            )
    finally:
        await runner.cleanup()
