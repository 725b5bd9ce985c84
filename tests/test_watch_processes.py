"""Two `usage-bot watch` processes, as two dynos, on one real PostgreSQL database.

Each is the real console command in its own OS process, running its own loop on
the real clock with a one-second WATCH_INTERVAL, against the stand-ins served by
this test. The bypass is already running when they start, so the first
evaluation alerts; what matters is who speaks, and how often.
"""

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.standins.cloudwatch import CREDENTIALS, CloudWatchStandin
from bot.standins.live import LiveSources
from bot.standins.scenario import ATTACKER_IP, CLOUDFLARE_PEERS, OPUS, Call
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.ssh import SshStandin
from bot.standins.tinybird import TinybirdStandIn
from tests.fixtures_slack import SLACK_TOKEN
from tests.slackbot import SIGNING_SECRET

UNIT = "text-pollinations.service"
ALERTS = "C0ALERTS"
PERIOD = timedelta(minutes=5)
WAIT_SECONDS = 90
_HOLDER = re.compile(r"holder=(\S+)")


def period_calls(start: datetime, attacked: bool) -> list[Call]:
    """10 covered Opus calls in the period, and 40 bypassing calls when attacked.

    Every call is stamped at the period's start, as CloudWatch stamps its 5-minute
    points: a period that begins while the test runs is then whole at once, and
    crossing a boundary never shows a half-empty period as covered.
    """
    calls = [
        Call(start, OPUS, "claude-large", 1_000, 100, True, CLOUDFLARE_PEERS[i % 2],
             "pk7Q")
        for i in range(10)
    ]  # fmt: skip
    if attacked:
        calls += [
            Call(start, OPUS, "claude-large", 10_000, 1_000, False, ATTACKER_IP,
                 "pk7Q")
            for _ in range(40)
        ]  # fmt: skip
    return calls


@dataclass
class Watch:
    """One `usage-bot watch` process and the log lines it has written so far."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    def count(self, event: str) -> int:
        return sum(f" {event} " in f"{line} " for line in self.lines)

    def evaluations(self) -> list[str]:
        return [line for line in self.lines if " watch evaluated " in line]


@dataclass
class Dynos:
    """Starts watch processes with one environment and waits on what they log."""

    env: dict[str, str]
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    started: list[Watch] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, *command: str, **env: str) -> Watch:
        """`usage-bot -v watch`, or another sub-command with more settings."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "-v", *(command or ["watch"]),
            env={**self.env, **env},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        watch = Watch(process)
        self.started.append(watch)
        self.readers.append(asyncio.create_task(self._read(watch)))
        return watch

    async def until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(condition), WAIT_SECONDS)

    async def stop(self, watch: Watch) -> int:
        if watch.process.returncode is None:
            watch.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(watch.process.wait(), WAIT_SECONDS)

    async def _read(self, watch: Watch) -> None:
        assert watch.process.stderr is not None
        async for raw in watch.process.stderr:
            async with self.changed:
                watch.lines.append(raw.decode().rstrip())
                self.changed.notify_all()


@pytest.fixture
async def dynos(
    tmp_path: Path,
    cloudwatch: CloudWatchStandin,
    tinybird: TinybirdStandIn,
    slack_api: SlackApiStandIn,
    fresh_postgres_url: str,
) -> AsyncIterator[Dynos]:
    """An hour of Opus traffic to the next periods, the last 20 minutes attacked."""
    journal = tmp_path / "journal.log"
    journal.touch()
    epoch = int(datetime.now(UTC).timestamp())
    current = datetime.fromtimestamp(epoch - epoch % 300, UTC)
    calls: list[Call] = []
    for number in range(-12, 4):
        start = current + number * PERIOD
        calls += period_calls(start, attacked=number >= -3)
    await asyncio.to_thread(LiveSources(cloudwatch, tinybird, journal).add, calls)

    async with SshStandin(tmp_path / "ssh", {UNIT: journal}) as host:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_ENDPOINT_URL": cloudwatch.url,
            "AWS_MAX_ATTEMPTS": "1",
            "TB_HOST": tinybird.url,
            "TB_TOKEN": tinybird.token,
            "JOURNAL_HOSTS": host.target,
            "JOURNAL_UNIT": UNIT,
            "SSH_KEY_PATH": str(host.client_key_path),
            "SSH_KNOWN_HOSTS": str(host.known_hosts_path),
            "DATABASE_URL": fresh_postgres_url,
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": slack_api.api_url,
            "ALERT_CHANNEL": ALERTS,
            "WATCH_INTERVAL": "1",
        }
        dynos = Dynos(env)
        try:
            yield dynos
        finally:
            for watch in dynos.started:
                if watch.process.returncode is None:
                    watch.process.kill()
                    await watch.process.wait()
            await asyncio.gather(*dynos.readers, return_exceptions=True)


async def test_two_watch_processes_evaluate_one_at_a_time_and_alert_once(
    dynos: Dynos, slack_api: SlackApiStandIn
) -> None:
    """Started together, one evaluates and the other skips; stopped with SIGTERM,
    the first gives the lease up and the second takes over without repeating."""
    first, second = await dynos.start(), await dynos.start()
    await dynos.until(
        lambda: (
            any(w.count("watch evaluated") >= 3 for w in dynos.started)
            and any(w.count("watch skipped") >= 2 for w in dynos.started)
        )
    )
    leader, follower = (first, second) if first.evaluations() else (second, first)
    led = list(leader.lines)
    followed = list(follower.lines)

    leader_status = await dynos.stop(leader)
    await dynos.until(lambda: len(follower.evaluations()) >= 2)
    follower_status = await dynos.stop(follower)

    assert follower.evaluations()[0] not in followed
    assert [line for line in followed if " watch evaluated " in line] == []
    assert sum(" watch skipped " in line for line in led) == 0
    assert "posted=['alert:claude-large']" in leader.evaluations()[0]
    assert all("posted=[]" in line for line in leader.evaluations()[1:])
    assert all("posted=[]" in line for line in follower.evaluations())
    holders = {_HOLDER.findall(line)[0] for line in leader.evaluations()}
    assert len(holders) == 1
    assert any(" watch stopped " in line for line in leader.lines)
    assert (leader_status, follower_status) == (0, 0)
    (alert,) = slack_api.calls_to("chat.postMessage")
    assert alert.params["channel"] == ALERTS
    assert alert.params["text"] == (
        ":rotating_light: Coverage alert: claude-large: uncovered cost $12.00 is "
        "above $5.00"
    )
    (upload,) = slack_api.uploads.values()
    assert upload.completed and upload.channel_id == ALERTS
    assert upload.thread_ts is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_with_the_watch_gives_the_lease_up_on_sigterm(
    dynos: Dynos, slack_api: SlackApiStandIn
) -> None:
    """`serve` with WATCH_IN_SERVE stopped by SIGTERM lets a watch process take
    over at its next interval, not when the one-minute lease would lapse."""
    web = await dynos.start(
        "serve", "--host", "127.0.0.1",
        WATCH_IN_SERVE="true", SLACK_SIGNING_SECRET=SIGNING_SECRET,
        PORT=str(free_port()),
    )  # fmt: skip
    await dynos.until(lambda: web.count("watch evaluated") >= 2)
    worker = await dynos.start()
    await dynos.until(lambda: worker.count("watch skipped") >= 1)

    stopped_at = asyncio.get_running_loop().time()
    web_status = await dynos.stop(web)
    await dynos.until(lambda: len(worker.evaluations()) >= 1)
    took_over = asyncio.get_running_loop().time() - stopped_at
    worker_status = await dynos.stop(worker)

    assert web_status == 0
    assert any(" serve stopped " in line for line in web.lines)
    assert took_over < 30
    assert "posted=['alert:claude-large']" in web.evaluations()[0]
    assert all("posted=[]" in line for line in worker.evaluations())
    assert worker_status == 0
    assert len(slack_api.calls_to("chat.postMessage")) == 1
