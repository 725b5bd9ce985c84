"""A rotation carried by real `usage-bot serve` processes on one PostgreSQL database.

Each bot is its own process, started as an operator would start it, reached through
signed HTTP as Slack reaches it, and killed with SIGKILL, so nothing of it survives
but what it committed. The stand-ins run in the test; the clock is the real one,
because a separate process cannot share a frozen clock.
"""

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sources.records import Counts
from bot.standins import slack_requests
from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.github import GitHubStandIn
from bot.standins.slack_api import SlackApiStandIn, SlackCall
from bot.standins.ssh import FakeFile, SshStandin, format_ip_log, write_journal
from bot.standins.tinybird import GatewayEvent, TinybirdStandIn
from bot.store import Store
from bot.store.models import Base
from tests.fixtures_rotation import (
    ADMIN,
    EDGE,
    ENV_FILE,
    GITHUB_TOKEN,
    INTRUDER,
    NEW,
    OLD,
    OPUS,
    OTHER,
    REPOSITORY,
    SECRET,
    SONNET,
    UNIT,
)
from tests.slackbot import BOT_TOKEN, CHANNEL, SIGNING_SECRET

START_TIMEOUT_SECONDS = 60
# Generous: the bots are separate processes on a machine that may be busy.
WAIT_SECONDS = 30
_LISTENING = re.compile(r" listening .*\bport=(\d+)")


@dataclass
class BotProcess:
    """One `usage-bot -v serve` child, its port, and everything it logged."""

    process: asyncio.subprocess.Process
    port: int = 0
    log: list[str] = field(default_factory=list)
    drained: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def wait_listening(self) -> None:
        """Read stderr until the server says where it listens; then keep draining."""
        assert self.process.stderr is not None
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while True:
                raw = await self.process.stderr.readline()
                if not raw:
                    raise AssertionError("bot exited:\n" + "".join(self.log))
                line = raw.decode()
                self.log.append(line)
                found = _LISTENING.search(line)
                if found:
                    self.port = int(found.group(1))
                    break
        self.drained = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.log.append(raw.decode())

    async def kill(self) -> None:
        """SIGKILL: no clean-up, no last commit."""
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        if self.drained is not None:
            await self.drained


@dataclass
class Fleet:
    """The stand-ins, the bots' shared environment, and a person's way to click."""

    slack: SlackApiStandIn
    github: GitHubStandIn
    host: SshStandin
    journal: Path
    env: dict[str, str]
    http: httpx.AsyncClient
    bots: list[BotProcess] = field(default_factory=list)
    number: int = 0

    async def start_bot(self) -> BotProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "-v", "serve", "--host", "127.0.0.1",
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        bot = BotProcess(process)
        self.bots.append(bot)
        await bot.wait_listening()
        return bot

    async def _signed(self, bot: BotProcess, form: dict[str, str]) -> httpx.Response:
        response = await slack_requests.post_signed(
            self.http, bot.url, form, SIGNING_SECRET
        )
        assert response.status_code == 200, response.text
        return response

    async def command(
        self, bot: BotProcess, text: str, user: str = ADMIN
    ) -> httpx.Response:
        self.number += 1
        form = slack_requests.slash_command(
            "rotate-checklist",
            text,
            user=user,
            channel=CHANNEL,
            response_url=self.slack.response_url(f"r{self.number}"),
            trigger_id=f"trigger-{self.number}",
        )
        return await self._signed(bot, form)

    def payload(self, action_id: str, value: str, user: str = ADMIN) -> dict[str, Any]:
        self.number += 1
        return slack_requests.click(
            action_id,
            value,
            user=user,
            channel=CHANNEL,
            trigger_id=f"trigger-{self.number}",
            message_ts=self._checklist_ts(),
        )

    def _checklist_ts(self) -> str | None:
        """The message clicks come from, as Slack puts it in every click."""
        posted = [m for m in self.slack.messages_in(CHANNEL) if "thread_ts" not in m]
        return str(posted[-1]["ts"]) if posted else None

    async def deliver(self, bot: BotProcess, payload: dict[str, Any]) -> None:
        await self._signed(bot, slack_requests.payload_form(payload))

    async def click(
        self, bot: BotProcess, action_id: str, value: str, user: str = ADMIN
    ) -> None:
        """Click, and wait until the bot has shown the change in Slack."""
        before = len(self.thread_lines())
        await self.deliver(bot, self.payload(action_id, value, user))
        await self.wait_thread_lines(before + 1)

    async def wait_thread_lines(self, count: int) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.thread_lines()) < count:
                posted = len(self.slack.calls_to("chat.postMessage"))
                await self.slack.wait_for_async(
                    "chat.postMessage", posted + 1, timeout=WAIT_SECONDS
                )

    def thread_lines(self) -> list[str]:
        return [
            call.params["text"]
            for call in self.slack.calls_to("chat.postMessage")
            if call.params.get("thread_ts")
        ]

    def ephemerals(self) -> list[tuple[str, str]]:
        return [
            (call.params["user"], call.params["text"])
            for call in self.slack.calls_to("chat.postEphemeral")
        ]

    def last_checklist(self) -> SlackCall:
        updates = self.slack.calls_to("chat.update")
        return updates[-1]


def _settings_env(values: dict[str, Any]) -> dict[str, str]:
    env = {}
    for name, value in values.items():
        text = ",".join(value) if isinstance(value, list) else str(value)
        env[name.upper()] = text
    return env


def coverage_at_baseline_now(
    cloudwatch: CloudWatchStandin, tinybird: TinybirdStandIn, now: datetime
) -> None:
    """Opus and Sonnet billed 10 calls 15 minutes ago; the gateway logged all 10."""
    billed_at = now - timedelta(minutes=15)
    cloudwatch.put_counts(
        [
            (OPUS, billed_at, Counts(10, 10_000, 1_000, 0)),
            (SONNET, billed_at, Counts(10, 10_000, 1_000, 0)),
        ]
    )
    tinybird.insert_events(
        [
            GatewayEvent(
                billed_at + timedelta(seconds=i),
                model,
                token_count_prompt_text=1_000,
                token_count_completion_text=100,
            )
            for model in (OPUS, SONNET)
            for i in range(10)
        ]
    )


@pytest.fixture
def slack() -> Iterator[SlackApiStandIn]:
    with SlackApiStandIn(token=BOT_TOKEN) as standin:
        yield standin


@asynccontextmanager
async def fleet_of(
    tmp_path: Path,
    slack: SlackApiStandIn,
    database_url: str,
    cloudwatch: CloudWatchStandin,
    tinybird: TinybirdStandIn,
) -> AsyncIterator[Fleet]:
    journal = write_journal(tmp_path / "journal.log", [])
    with GitHubStandIn(GITHUB_TOKEN, REPOSITORY) as github:
        async with (
            SshStandin(tmp_path / "ssh", {UNIT: journal}) as host,
            httpx.AsyncClient(timeout=10) as http,
        ):
            env = {
                **os.environ,
                **_settings_env(
                    {
                        "slack_bot_token": BOT_TOKEN,
                        "slack_signing_secret": SIGNING_SECRET,
                        "slack_api_url": slack.api_url,
                        "port": 0,
                        "bot_admins": [ADMIN, OTHER],
                        "database_url": database_url,
                        "github_token": GITHUB_TOKEN,
                        "github_api_url": github.url,
                        "github_repository": REPOSITORY,
                        "tb_host": tinybird.url,
                        "tb_token": tinybird.token,
                        "journal_unit": UNIT,
                        "rotation_env_file": ENV_FILE,
                        **host.settings_values(),
                    }
                ),
                "AWS_ENDPOINT_URL": cloudwatch.url,
            }
            fleet = Fleet(slack, github, host, journal, env, http)
            try:
                yield fleet
            finally:
                for bot in fleet.bots:
                    if bot.process.returncode is None:
                        await bot.kill()


async def test_two_bot_processes_and_a_sigkill_lose_nothing(
    tmp_path: Path,
    slack: SlackApiStandIn,
    fresh_postgres_url: str,
    cloudwatch: CloudWatchStandin,
    tinybird: TinybirdStandIn,
) -> None:
    """Start on A, share with B, kill A mid-way, finish on B, read on a fresh C."""
    async with fleet_of(
        tmp_path, slack, fresh_postgres_url, cloudwatch, tinybird
    ) as fleet:
        first = await fleet.start_bot()
        await fleet.command(first, "")
        (posted,) = await slack.wait_for_async("chat.postMessage", timeout=WAIT_SECONDS)
        store = await Store.open(fresh_postgres_url)
        try:
            (started_at,) = await store.run(_started_at)
            fleet.github.set_secret(SECRET, started_at + timedelta(minutes=1))
            env_changed = started_at + timedelta(seconds=2)
            fleet.host.files[ENV_FILE] = FakeFile(
                mtime=int(env_changed.timestamp()), mode=0o600
            )

            await fleet.click(first, "rotation_step_done", "1:1")
            await fleet.click(first, "rotation_step_done", "1:2", OTHER)
            await fleet.click(first, "rotation_step_verify", "1:3")

            # A second process on the same database: two people click step 4 at
            # once, one on each process, and one click reaches both processes.
            second = await fleet.start_bot()
            await asyncio.gather(
                fleet.deliver(first, fleet.payload("rotation_step_done", "1:4")),
                fleet.deliver(
                    second, fleet.payload("rotation_step_done", "1:4", OTHER)
                ),
            )
            await fleet.wait_thread_lines(4)
            await slack.wait_for_async("chat.postEphemeral", timeout=WAIT_SECONDS)
            redelivered = fleet.payload("rotation_step_skip", "1:6")
            await asyncio.gather(
                fleet.deliver(first, redelivered), fleet.deliver(second, redelivered)
            )
            await fleet.wait_thread_lines(5)

            await first.kill()
            await fleet.click(second, "rotation_step_verify", "1:5")
            await fleet.click(second, "rotation_step_done", "1:7", OTHER)
            step_7_at = await store.run(_step_time(7))
            write_journal(
                fleet.journal,
                [
                    format_ip_log(step_7_at, EDGE, "/openai", "claude-large", NEW),
                    format_ip_log(step_7_at, EDGE, "/openai", "claude-large", NEW),
                ],
            )
            coverage_at_baseline_now(cloudwatch, tinybird, datetime.now(UTC))
            await fleet.command(second, f"verify 1 {NEW} {OLD}")
            await fleet.wait_thread_lines(8)
            await fleet.click(second, "rotation_close_done", "1")
            await second.kill()

            third = await fleet.start_bot()
            await fleet.command(third, "status")
            (status,) = await slack.wait_for_async("response_url", timeout=WAIT_SECONDS)
            await fleet.deliver(third, fleet.payload("rotation_step_undo", "1:1"))
            await fleet.deliver(
                third, fleet.payload("rotation_step_done", "1:8", INTRUDER)
            )
            await slack.wait_for_async("chat.postEphemeral", 3, WAIT_SECONDS)
            await third.kill()

            audit = await store.audit_entries()
            rows = await store.run(_every_row)
        finally:
            await store.close()
        review = await _terminal(fleet.env, "rotations", "1")
        listed = json.loads(await _terminal(fleet.env, "rotations", "--json"))

    lines = fleet.thread_lines()
    step_4_by = "UADMIN" if "<@UADMIN> marked step 4 done" in lines else "UOTHER"
    step_4_not = OTHER if step_4_by == "UADMIN" else ADMIN
    github_at = (started_at + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    env_at = env_changed.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lines[:3] == [
        "<@UADMIN> marked step 1 done",
        "<@UOTHER> marked step 2 done",
        f"<@UADMIN> verified step 3: passed. updated_at {github_at}, after start "
        f"{_short(started_at, started_at + timedelta(minutes=1))}",
    ]
    assert lines[3:5] == [
        f"<@{step_4_by}> marked step 4 done",
        "<@UADMIN> skipped step 6",
    ]
    assert lines[5] == (
        f"<@UADMIN> verified step 5: passed. {ENV_FILE} modified {env_at}, after "
        f"start {_short(started_at, env_changed)}; mode 600"
    )
    assert lines[6] == "<@UOTHER> marked step 7 done"
    assert lines[7].startswith("<@UADMIN> verified step 8: passed. ")
    assert (
        "Nw3x 2; only the new prefix; coverage 1h: claude-large 100.0% ok, "
        in (lines[7])
    )
    assert lines[8:] == ["<@UADMIN> closed this rotation as done"]
    assert fleet.ephemerals() == [
        (step_4_not, f"step 4 is already done (by {step_4_by})"),
        (ADMIN, "rotation #1 is done; a closed rotation is read-only"),
        (
            INTRUDER,
            "Only the bot's admins (BOT_ADMINS) can do this; the attempt was logged.",
        ),
    ]
    assert status.params["text"] == "No open rotations."
    assert posted.params["text"] == "Rotate PLN_ENTER_TOKEN: 0 of 8 done"
    final = fleet.last_checklist().params
    assert final["text"] == "Rotate PLN_ENTER_TOKEN: 8 of 8 done (1 skipped)"
    entries = [(e.actor, e.action, e.outcome) for e in audit]
    assert set(entries[4:6]) == {
        (step_4_by, "step.done", "applied"),
        (step_4_not, "step.done", "unchanged"),
    }
    assert entries[:4] + entries[6:] == [
        (ADMIN, "rotation.start", "applied"),
        (ADMIN, "step.done", "applied"),
        (OTHER, "step.done", "applied"),
        (ADMIN, "step.check", "applied"),
        (ADMIN, "step.skip", "applied"),
        (ADMIN, "step.check", "applied"),
        (OTHER, "step.done", "applied"),
        (ADMIN, "step.check", "applied"),
        (ADMIN, "rotation.close", "applied"),
        (ADMIN, "step.undo", "rejected"),
        (INTRUDER, "step.done", "denied"),
    ]
    (summary,) = listed
    del summary["started_at"], summary["closed_at"]
    assert summary == {
        "id": 1,
        "token": "PLN_ENTER_TOKEN",
        "status": "done",
        "progress": "8/8",
        "started_by": ADMIN,
        "closed_by": ADMIN,
    }
    head, log = review.split("\nAudit log\n")
    assert head.splitlines()[0].startswith(
        "Rotation #1 of PLN_ENTER_TOKEN: done, 8 of 8 done, started by UADMIN at "
    )
    assert [line.split()[2:5] for line in log.splitlines()[2:]] == [
        [e.actor, e.action, e.outcome] for e in audit if e.target == "rotation:1"
    ]
    assert f"  step 8: {lines[7].split('passed. ', 1)[1]}" in head
    for secret in (GITHUB_TOKEN, tinybird.token, SIGNING_SECRET, BOT_TOKEN):
        assert secret not in rows
        assert secret not in "".join(line for bot in fleet.bots for line in bot.log)
        assert secret not in json.dumps([c.params for c in slack.calls], default=str)


async def _terminal(env: dict[str, str], *words: str) -> str:
    """`usage-bot WORDS` in its own process, as someone reviewing the incident."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *words,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode()


def _short(moment: datetime, beside: datetime) -> str:
    """A start time as the evidence writes it: the clock time on the same day."""
    if moment.date() == beside.date():
        return moment.strftime("%H:%MZ")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def _started_at(session: Any) -> list[datetime]:
    from bot.store.models import Rotation

    return [row.started_at for row in session.query(Rotation).all()]


def _step_time(number: int) -> Any:
    def read(session: Any) -> datetime:
        from bot.store.models import RotationStep

        step = session.get(RotationStep, (1, number))
        assert step is not None and step.updated_at is not None
        return step.updated_at

    return read


def _every_row(session: Any) -> str:
    return "\n".join(
        repr(row)
        for table in Base.metadata.sorted_tables
        for row in session.execute(table.select())
    )
