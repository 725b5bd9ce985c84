"""Driving the real Bolt app over HTTP with signed requests, as Slack does."""

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.config import Settings
from bot.services import Services, build_services
from bot.slack.app import build_app
from bot.slack.server import start_http
from bot.standins.slack_api import SlackApiStandIn

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
ADMIN = "UADMIN"
CHANNEL = "CINCIDENT"


def signature(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


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

    async def signed(
        self, form: dict[str, str], at: int | None = None
    ) -> httpx.Response:
        body = urlencode(form).encode()
        stamp = int(time.time()) if at is None else at
        return await self.post(
            body,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": str(stamp),
                "X-Slack-Signature": signature(body, stamp),
            },
        )

    async def command(
        self, name: str, text: str = "", user: str = ADMIN, response_id: str = "r1"
    ) -> httpx.Response:
        return await self.signed(
            {
                "command": f"/{name}",
                "text": text,
                "user_id": user,
                "user_name": user.lower(),
                "channel_id": CHANNEL,
                "team_id": "T0STANDIN",
                "response_url": self.slack.response_url(response_id),
                "trigger_id": "trigger-1",
            }
        )

    async def click(
        self, action_id: str, value: str, user: str = ADMIN, ts: str = "1.0"
    ) -> httpx.Response:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower()},
            "team": {"id": "T0STANDIN"},
            "channel": {"id": CHANNEL},
            "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL},
            "message": {"ts": ts},
            "trigger_id": "trigger-2",
            "response_url": self.slack.response_url("click"),
            "actions": [
                {"action_id": action_id, "block_id": "b", "value": value,
                 "type": "button", "action_ts": str(time.time())}
            ],
        }  # fmt: skip
        return await self.signed({"payload": json.dumps(payload)})


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
