"""Helpers for a whole rotation's world: the Bolt app, Slack, GitHub, SSH, coverage.

Time is frozen at START and moved by hand; every stand-in listens on 127.0.0.1.
"""

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bot.config import Settings
from bot.services import Services, build_services
from bot.slack.app import build_app
from bot.slack.server import start_http
from bot.sources.records import Counts
from bot.standins import slack_requests
from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.github import GitHubStandIn
from bot.standins.slack_api import SlackApiStandIn, SlackCall
from bot.standins.ssh import SshStandin, format_ip_log, write_journal
from bot.standins.tinybird import GatewayEvent, TinybirdStandIn
from bot.store import Store
from tests.slackbot import BOT_TOKEN, CHANNEL, SIGNING_SECRET

START = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)
ADMIN, OTHER, INTRUDER = "UADMIN", "UOTHER", "UINTRUDER"
GITHUB_TOKEN = "ghs_rotation_secret_value_9f3a"
REPOSITORY = "pollinations/pollinations"
SECRET = "PLN_ENTER_TOKEN"
UNIT = "text-pollinations.service"
ENV_FILE = "/home/ubuntu/text.pollinations.ai/.env"
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NEW, OLD = "Nw3x", "pk7Q"
EDGE = "::ffff:172.69.59.125"


def at(minutes: float) -> datetime:
    """`minutes` after START."""
    return START + timedelta(minutes=minutes)


def ip_lines(entries: list[tuple[float, str]]) -> list[str]:
    """`[IP-LOG]` lines for (minutes after START, token prefix)."""
    return [
        format_ip_log(at(minute), EDGE, "/openai", "claude-large", prefix)
        for minute, prefix in sorted(entries)
    ]


class Finished(logging.Handler):
    """Counts the one log line each rotation listener writes when it is done."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.outcomes: list[tuple[str, str, str]] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() != "rotation":
            return
        facts = record.__dict__
        self.outcomes.append((facts["what"], facts["user"], facts["outcome"]))
        self._changed.set()

    async def wait(self, count: int) -> list[tuple[str, str, str]]:
        """Until `count` listeners have finished in all; their outcomes."""
        async with asyncio.timeout(10):
            while len(self.outcomes) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.outcomes)


@dataclass
class Chat:
    """One running bot process, and a person's ways of talking to it."""

    url: str
    slack: SlackApiStandIn
    services: Services
    http: httpx.AsyncClient
    numbers: Iterator[int]

    async def store(self) -> Store:
        return await self.services.store()

    async def signed(self, form: dict[str, str]) -> httpx.Response:
        return await slack_requests.post_signed(
            self.http, self.url, form, SIGNING_SECRET
        )

    async def command(self, text: str = "", user: str = ADMIN) -> httpx.Response:
        number = next(self.numbers)
        return await self.signed(
            slack_requests.slash_command(
                "rotate-checklist",
                text,
                user=user,
                channel=CHANNEL,
                response_url=self.slack.response_url(f"r{number}"),
                trigger_id=f"trigger-{number}",
            )
        )

    def click_payload(self, action_id: str, value: str, user: str = ADMIN) -> str:
        """A block_actions payload as Slack sends it, with a fresh action_ts."""
        number = next(self.numbers)
        payload = slack_requests.click(
            action_id,
            value,
            user=user,
            channel=CHANNEL,
            trigger_id=f"trigger-{number}",
            action_ts=f"{int(datetime.now(UTC).timestamp())}.{number}",
        )
        return json.dumps(payload)

    async def deliver(self, payload: str) -> httpx.Response:
        return await self.signed({"payload": payload})

    async def click(
        self, action_id: str, value: str, user: str = ADMIN
    ) -> httpx.Response:
        return await self.deliver(self.click_payload(action_id, value, user))

    async def submit_prefixes(
        self, new: str, old: str, metadata: str = "1:8", user: str = ADMIN
    ) -> httpx.Response:
        """The prefix dialog, submitted."""
        view = {
            "id": f"V{next(self.numbers)}",
            "type": "modal",
            "private_metadata": metadata,
        }
        payload = slack_requests.prefix_submission(view, new, old, user=user)
        return await self.signed(slack_requests.payload_form(payload))


@dataclass
class World:
    """Every stand-in a rotation touches, the frozen clock, and the bot's database."""

    slack: SlackApiStandIn
    github: GitHubStandIn
    host: SshStandin
    tinybird: TinybirdStandIn
    clock: Any
    finished: Finished
    database_url: str
    journal: Path
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def settings(self, **changes: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": self.slack.api_url,
            "bot_admins": [ADMIN, OTHER],
            "database_url": self.database_url,
            "github_token": GITHUB_TOKEN,
            "github_api_url": self.github.url,
            "github_repository": REPOSITORY,
            "tb_host": self.tinybird.url,
            "tb_token": self.tinybird.token,
            "journal_unit": UNIT,
            **self.host.settings_values(),
        }
        return Settings(**{**values, **changes})

    @asynccontextmanager
    async def bot(self, **changes: Any) -> AsyncIterator[Chat]:
        """A bot process as `usage-bot serve` builds it; stopped on leaving."""
        config = self.settings(**changes)
        services = build_services(config)
        runner, port = await start_http(build_app(config, services), "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                url = f"http://127.0.0.1:{port}/slack/events"
                yield Chat(url, self.slack, services, http, self.numbers)
        finally:
            await runner.cleanup()
            await services.close()

    def move_to(self, minutes: float) -> None:
        """Set the frozen clock to `minutes` after START."""
        self.clock.move_to(at(minutes))

    def write_journal(self, entries: list[tuple[float, str]]) -> None:
        write_journal(self.journal, ip_lines(entries))

    def thread_lines(self) -> list[str]:
        """Every line posted in a checklist's thread, oldest first."""
        return [
            call.params["text"]
            for call in self.slack.calls_to("chat.postMessage")
            if call.params.get("thread_ts")
        ]

    def checklists(self) -> list[SlackCall]:
        return [
            call
            for call in self.slack.calls_to("chat.postMessage")
            if not call.params.get("thread_ts")
        ]

    def replies(self) -> list[str]:
        """What the bot answered through slash commands' response URLs."""
        return [call.params["text"] for call in self.slack.calls_to("response_url")]

    def ephemerals(self) -> list[tuple[str, str]]:
        return [
            (call.params["user"], call.params["text"])
            for call in self.slack.calls_to("chat.postEphemeral")
        ]

    def last_blocks(self) -> list[dict[str, Any]]:
        """The checklist message as it now stands."""
        updates = self.slack.calls_to("chat.update")
        source = updates[-1] if updates else self.checklists()[-1]
        blocks = source.params["blocks"]
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def coverage_at_baseline(
    cloudwatch: CloudWatchStandin, tinybird: TinybirdStandIn
) -> None:
    """Opus and Sonnet each billed 10 calls at 21:40 and the gateway logged all 10."""
    cloudwatch.put_counts(
        [
            (OPUS, at(10), Counts(10, 10_000, 1_000, 0)),
            (SONNET, at(10), Counts(10, 10_000, 1_000, 0)),
        ]
    )
    tinybird.insert_events(
        [
            GatewayEvent(
                at(10) + timedelta(seconds=i),
                model,
                token_count_prompt_text=1_000,
                token_count_completion_text=100,
            )
            for model in (OPUS, SONNET)
            for i in range(10)
        ]
    )
