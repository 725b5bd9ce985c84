"""The watcher against the real stand-ins: moto, chDB, an SSH host, Slack's Web API.

Calls are fed period by period as the injected clock advances, so each evaluation
sees only what had happened by then, as `usage-bot watch --once` would.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from bot.config import Settings
from bot.errors import ConfigError
from bot.services import Services, build_services
from bot.sources.cloudwatch import CloudWatchMetrics
from bot.standins.cloudwatch import CREDENTIALS, CloudWatchStandin
from bot.standins.live import LiveSources
from bot.standins.scenario import ATTACKER_IP, CLOUDFLARE_PEERS, OPUS, Call
from bot.standins.slack_api import SlackApiStandIn, SlackCall
from bot.standins.ssh import SshStandin
from bot.standins.tinybird import TinybirdStandIn
from bot.watch.evaluate import Action
from bot.watch.runner import run_watch, start_in_background
from bot.watch.watcher import Posted, Watcher, slack_client
from tests.fixtures_slack import SLACK_TOKEN

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
UNIT = "text-pollinations.service"
ALERTS = "C0ALERTS"
PERIOD = timedelta(minutes=5)
ATTACK_START, ATTACK_END = T0, T0 + timedelta(minutes=30)
# Opus: 10 calls a period through the gateway; the bypass adds 40 a period of
# 10,000 input and 1,000 output tokens, $0.075 each at $5 and $25 a million.
NORMAL_PER_PERIOD, ATTACK_PER_PERIOD = 10, 40


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def period_calls(start: datetime) -> list[Call]:
    """The calls of the 5 minutes from `start`, the same on every run."""
    calls = [
        Call(start + timedelta(seconds=20 * i), OPUS, "claude-large", 1_000, 100,
             True, CLOUDFLARE_PEERS[i % 2], "pk7Q")
        for i in range(NORMAL_PER_PERIOD)
    ]  # fmt: skip
    if ATTACK_START <= start < ATTACK_END:
        calls += [
            Call(start + timedelta(seconds=5 * i), OPUS, "claude-large", 10_000,
                 1_000, False, ATTACKER_IP, "pk7Q")
            for i in range(ATTACK_PER_PERIOD)
        ]  # fmt: skip
    return calls


@dataclass
class World:
    """The stand-ins, fed up to `fed`, and the clock the watchers read."""

    live: LiveSources
    settings: Settings
    cloudwatch: CloudWatchStandin
    slack: SlackApiStandIn
    now: datetime = T0 - timedelta(hours=1)
    fed: datetime = T0 - timedelta(hours=1)
    services: list[Services] = field(default_factory=list)

    async def advance_to(self, moment: datetime) -> None:
        calls: list[Call] = []
        while self.fed < moment:
            calls += period_calls(self.fed)
            self.fed += PERIOD
        await asyncio.to_thread(self.live.add, calls)
        self.now = moment

    def watcher(self, holder: str, **overrides: Any) -> Watcher:
        settings = self.settings.model_copy(update=overrides)
        metrics = CloudWatchMetrics(
            settings,
            endpoint_url=self.cloudwatch.url,
            credentials=(
                CREDENTIALS["aws_access_key_id"],
                CREDENTIALS["aws_secret_access_key"],
            ),
        )
        services = build_services(settings, providers={"bedrock": metrics})
        self.services.append(services)
        client = slack_client(SLACK_TOKEN, self.slack.api_url)
        return Watcher(services, client, clock=lambda: self.now, holder=holder)

    async def step(self, watcher: Watcher, minutes: int) -> list[Posted] | None:
        await self.advance_to(at(minutes))
        return await watcher.evaluate()


@pytest.fixture
async def world(
    tmp_path: Path,
    cloudwatch: CloudWatchStandin,
    tinybird: TinybirdStandIn,
    slack_api: SlackApiStandIn,
) -> AsyncIterator[World]:
    journal = tmp_path / "journal.log"
    journal.touch()
    async with SshStandin(tmp_path / "ssh", {UNIT: journal}) as host:
        settings = Settings(
            tb_host=tinybird.url,
            tb_token=tinybird.token,
            journal_unit=UNIT,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
            slack_bot_token=SLACK_TOKEN,
            slack_api_url=slack_api.api_url,
            alert_channel=ALERTS,
            aws_max_attempts=1,
            watch_renotify=900,
            watch_recovery_checks=2,
            watch_cost_alert_usd=5.0,
            **host.settings_values(),
        )
        world = World(LiveSources(cloudwatch, tinybird, journal), settings,
                      cloudwatch, slack_api)  # fmt: skip
        yield world
        for services in world.services:
            await services.close()


def posts(slack: SlackApiStandIn) -> list[SlackCall]:
    return slack.calls_to("chat.postMessage")


def texts(slack: SlackApiStandIn) -> list[tuple[str | None, str]]:
    return [(c.params.get("thread_ts"), c.params["text"]) for c in posts(slack)]


async def test_a_drop_that_stays_and_recovers_gives_one_alert_and_one_recovery(
    world: World,
) -> None:
    """Alert at the second interval, an update after 15 minutes, and the recovery
    two clean intervals after the bypass stops at 0:30, not when it leaves the
    hour's window; a restart in the middle neither repeats nor forgets."""
    watcher = world.watcher("one")
    sent: list[Posted] = []

    for minutes in range(5, 20, 5):
        sent += await world.step(watcher, minutes) or []
    await watcher.close()
    watcher = world.watcher("two")
    for minutes in range(20, 95, 5):
        sent += await world.step(watcher, minutes) or []

    assert [(p.action, p.at) for p in sent] == [
        (Action.ALERT, at(10)),
        (Action.UPDATE, at(25)),
        (Action.RECOVERY, at(40)),
    ]
    alert = posts(world.slack)[0]
    ts = sent[0].ts
    assert alert.params["channel"] == ALERTS
    assert "thread_ts" not in alert.params
    assert [thread for thread, _ in texts(world.slack)] == [None, ts, ts]
    # By 12:25, five attacked periods of 40 calls at $0.075: $15.00; over the
    # hour from 11:25, 120 logged of 320 billed.
    assert texts(world.slack)[1][1] == (
        ":hourglass: claude-large is still alerting: uncovered cost $15.00 is above "
        "$5.00. Coverage over 1h 37.5%; uncovered cost this episode so far $15.00."
    )
    assert texts(world.slack)[-1][1] == (
        ":white_check_mark: claude-large has recovered: coverage is back to normal. "
        "The episode cost $18.00 in uncovered calls, from Thu 03 Dec 12:00 UTC to "
        "Thu 03 Dec 12:40 UTC."
    )
    (upload,) = world.slack.uploads.values()
    assert upload.completed and upload.thread_ts == ts
    assert upload.channel_id == ALERTS
    assert (upload.content or b"").startswith(b"\x89PNG")


async def test_the_alert_names_figures_suspects_and_offers_the_rotation(
    world: World,
) -> None:
    """Coverage now and over the hour, the gap's cost and start, the attacker's IP."""
    watcher = world.watcher("one")
    await world.step(watcher, 5)

    (posted,) = await world.step(watcher, 10) or []

    blocks = posts(world.slack)[0].params["blocks"]
    assert posted.text == (
        ":rotating_light: Coverage alert: claude-large: uncovered cost $6.00 is "
        "above $5.00"
    )
    assert blocks[1]["text"]["text"] == (
        "uncovered cost $6.00 is above $5.00.\n"
        "*Coverage now* (last period): 20.0%\n"
        "*Coverage over 1h*: 60.0%\n"
        "*Uncovered so far*: 80 calls, $6.00\n"
        "*Gap began*: Thu 03 Dec 12:00 UTC"
    )
    assert blocks[2]["text"]["text"] == (
        "*Suspects* (outside the expected ingress):\n"
        f"• `{ATTACKER_IP}`: 80 requests, claude-large, since Thu 03 Dec 12:00 UTC, "
        "token `pk7Q…`"
    )
    (button,) = blocks[3]["elements"]
    assert (button["action_id"], button["value"]) == ("rotation_start", "claude-large")


async def test_a_source_failing_mid_episode_is_no_data_once_and_no_false_recovery(
    world: World,
) -> None:
    """CloudWatch down as the gap leaves the window: recovery waits for real data,
    and the models outside the episode are told back once, together."""
    watcher = world.watcher("one")
    await world.step(watcher, 5)
    await world.step(watcher, 10)
    await world.step(watcher, 75)

    sent: list[Posted] = []
    for minutes in (80, 85, 90):
        await world.advance_to(at(minutes))
        world.cloudwatch.fail_next(
            "AccessDeniedException", "User is not authorized", times=2
        )
        sent += await watcher.evaluate() or []
    back = await world.step(watcher, 95)
    recovered = await world.step(watcher, 100)

    assert [(p.action, p.model, p.thread_ts is not None) for p in sent] == [
        (Action.NO_DATA, "nova-fast, nova-lite, claude, claude-fast, chickytutor, "
         "opus-4.1", False),
        (Action.NO_DATA, "claude-large", True),
    ]  # fmt: skip
    assert sent[1].text == ":grey_question: Watch has no data for claude-large"
    assert posts(world.slack)[2].params["blocks"][0]["text"]["text"] == (
        ":grey_question: Watch has no data for claude-large.\n• *claude-large*: a "
        "source failed (cloudwatch: AccessDeniedException: User is not authorized)"
    )
    # The other models were only waiting for data; claude-large, in its episode,
    # needs two clean checks, so 95 is its first and 100 its recovery.
    assert [(p.action, p.thread_ts) for p in back or []] == [(Action.DATA_BACK, None)]
    assert (back or [])[0].text == (
        ":white_check_mark: Watch has data again for nova-fast, nova-lite, claude, "
        "claude-fast, chickytutor, opus-4.1: they are judged again, and not alerting."
    )
    assert [p.action for p in recovered or []] == [Action.RECOVERY]
    assert "The episode cost $18.00" in (recovered or [])[0].text
    assert [p.params.get("thread_ts") is None for p in posts(world.slack)] == [
        True, True, False, True, False,
    ]  # fmt: skip


async def test_two_watchers_on_one_postgres_database_send_one_alert(
    world: World, fresh_postgres_url: str
) -> None:
    """Both evaluate at once, twice: one holds the lease, one alert is posted."""
    first = world.watcher("first", database_url=fresh_postgres_url)
    second = world.watcher("second", database_url=fresh_postgres_url)
    await world.advance_to(at(10))

    answers = await asyncio.gather(first.evaluate(), second.evaluate())
    await world.advance_to(at(15))
    again = await asyncio.gather(second.evaluate(), first.evaluate())

    assert sorted(a is None for a in answers) == [False, True]
    assert sorted(a is None for a in again) == [False, True]
    assert [p.action for p in answers[0] or answers[1] or []] == [Action.ALERT]
    assert len(posts(world.slack)) == 1


async def test_an_evaluation_that_outlasts_its_lease_posts_nothing(
    world: World,
) -> None:
    """Coverage answered 11 minutes late (lease 10): the post is left to whoever
    holds the lease by then, and that one alerts exactly once."""
    slow = world.watcher("slow")
    readings = iter([at(10), at(21)])
    slow.clock = lambda: next(readings)
    await world.advance_to(at(10))

    stalled = await slow.evaluate()
    taken = await world.step(world.watcher("next"), 25)

    assert stalled == []
    assert [p.action for p in taken or []] == [Action.ALERT]
    assert len(posts(world.slack)) == 1


async def test_watch_once_alerts_then_stays_quiet(world: World) -> None:
    """`usage-bot watch --once` at 12:10 alerts; run again at 12:15 it says nothing."""
    await world.advance_to(at(10))

    with time_machine.travel(at(10), tick=False):
        first = await run_watch(world.settings, once=True)
    await world.advance_to(at(15))
    with time_machine.travel(at(15), tick=False):
        second = await run_watch(world.settings, once=True)

    assert (first, second) == (0, 0)
    assert [c.params["text"][:45] for c in posts(world.slack)] == [
        ":rotating_light: Coverage alert: claude-large"
    ]


async def test_watch_once_from_cron_also_posts_the_digest_once(world: World) -> None:
    """DIGEST_AT 12:05: the 12:10 run alerts and posts the digest; 12:15 neither."""
    settings = world.settings.model_copy(update={"digest_at": "12:05"})
    await world.advance_to(at(10))

    with time_machine.travel(at(10), tick=False):
        await run_watch(settings, once=True)
    await world.advance_to(at(15))
    with time_machine.travel(at(15), tick=False):
        await run_watch(settings, once=True)

    assert [c.params["text"][:40] for c in posts(world.slack)] == [
        ":rotating_light: Coverage alert: claude-",
        "Daily digest: the last 24h",
    ]


async def test_watch_without_a_channel_explains_and_exits_2(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = world.settings.model_copy(update={"alert_channel": None})

    status = await run_watch(settings, once=True)

    assert status == 2
    assert capsys.readouterr().err == (
        "watch: ALERT_CHANNEL must name the channel for alerts; got none\n"
    )
    assert posts(world.slack) == []


async def test_the_watch_runs_inside_serve_as_a_task_and_stops_cleanly(
    world: World,
) -> None:
    """WATCH_IN_SERVE: the task alerts, and cancelling it gives the lease back."""
    await world.advance_to(at(10))
    watcher = world.watcher("probe")
    services = watcher.services

    with time_machine.travel(at(10), tick=False):
        task = start_in_background(watcher.slack, services)
        await world.slack.wait_for_async("chat.postMessage")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store = await services.store()
        taken = await store.acquire_lease(
            "watch", "probe", timedelta(minutes=1), at(10)
        )

    assert taken
    assert len(posts(world.slack)) == 1


async def test_the_daily_digest_is_posted_once_when_due(world: World) -> None:
    """DIGEST_AT 12:30 UTC: nothing before it, one message after, none the next time."""
    watcher = world.watcher("one", digest_at="12:30")
    await world.advance_to(at(25))

    early = await watcher.send_digest()
    await world.advance_to(at(35))
    first = await watcher.send_digest()
    second = await world.watcher("two", digest_at="12:30").send_digest()

    assert (early, second) == (None, None)
    assert first is not None
    (post,) = posts(world.slack)
    assert post.params["channel"] == ALERTS
    rows = {
        row[0]["text"]: [cell["text"] for cell in row[1:]]
        for row in next(b for b in post.params["blocks"] if b["type"] == "table")[
            "rows"
        ]
    }
    # From 11:00 to 12:35, nineteen 5-minute periods of 10 covered Opus calls
    # of 1,000 and 100 tokens, and the bypass's 40 calls of 10,000 and 1,000 in
    # each of the six from 12:00 to 12:30: 2.59M and 259k tokens at $5 and $25 a
    # million, $19.43, of which the bypass's 240 calls are $18.00. Idle models
    # have no row.
    assert rows == {
        "model": ["invocations", "input tok", "output tok", "cost", "coverage",
                  "verdict"],
        "claude-large": [f"{19 * 10 + 6 * 40:,}", "2.6M", "259.0k", "$19.43",
                         "44.2%", "likely-unauthorized"],
        "total": ["430", "2.6M", "259.0k", "$19.43", " ", "uncovered $18.00"],
    }  # fmt: skip


def test_a_bad_digest_time_fails_at_start_up(world: World) -> None:
    with pytest.raises(ConfigError, match="DIGEST_AT must be a local time like 09:00"):
        world.watcher("one", digest_at="9am")
