"""`usage-bot demo --watch`: a live bypass starts and stops while the watcher runs.

The stand-ins start with two quiet hours of traffic; a simulated clock then moves
one WATCH_INTERVAL per step, adding each interval's calls before the watcher looks.
Messages go to a local Slack stand-in, or to a real workspace when SLACK_BOT_TOKEN
and ALERT_CHANNEL are set and `--slack` is given.
"""

import argparse
import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import Settings
from bot.render.blocks import local_time
from bot.standins.live import LiveSources, attack_calls, normal_calls
from bot.standins.scenario import incident
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.stack import Stack
from bot.watch.evaluate import Action
from bot.watch.watcher import Posted, Watcher, slack_client

STANDIN_CHANNEL = "C0ALERTS"
STANDIN_TOKEN = "xoxb-watch-demo"  # noqa: S105  the local stand-in's own token
HISTORY_HOURS = 2


@dataclass(frozen=True)
class AttackPlan:
    """When the bypass runs, relative to the start of the simulation."""

    starts_after: timedelta
    lasts: timedelta
    per_hour: int = 460


@dataclass
class WatchRun:
    """What a simulated run produced: each message, and when the bypass began."""

    start: datetime
    interval: timedelta
    first_uncovered_call: datetime | None = None
    posted: list[Posted] = field(default_factory=list)

    def detection_intervals(self) -> float | None:
        """From the first uncovered call to the alert, in check intervals."""
        alert = next((p for p in self.posted if p.action is Action.ALERT), None)
        if alert is None or self.first_uncovered_call is None:
            return None
        return (alert.at - self.first_uncovered_call) / self.interval


DEFAULT_PLAN = AttackPlan(
    starts_after=timedelta(minutes=12, seconds=30), lasts=timedelta(minutes=40)
)


def simulation_start(now: datetime | None = None) -> datetime:
    """A period boundary, so that every step ends where a CloudWatch period ends."""
    moment = int((now or datetime.now(UTC)).timestamp())
    return datetime.fromtimestamp(moment - moment % 300, UTC)


async def simulate(
    watcher: Watcher,
    live: LiveSources,
    start: datetime,
    plan: AttackPlan,
    clock: "SimulatedClock",
    max_steps: int,
    on_step: Callable[[datetime, list[Posted]], None] | None = None,
    seed: int = 11,
) -> WatchRun:
    """Step until the episode is over (or `max_steps`), feeding each interval first."""
    rng = random.Random(seed)  # noqa: S311  reproducible traffic, not secrets
    interval = timedelta(seconds=watcher.services.settings.watch_interval)
    attack_start, attack_end = start + plan.starts_after, start + plan.starts_after
    attack_end += plan.lasts
    run = WatchRun(start=start, interval=interval)

    for step in range(max_steps):
        begin, end = start + step * interval, start + (step + 1) * interval
        calls = normal_calls(begin, end, rng)
        bypass = attack_calls(
            max(begin, attack_start), min(end, attack_end), rng, plan.per_hour
        )
        if bypass and run.first_uncovered_call is None:
            run.first_uncovered_call = min(call.at for call in bypass)
        await asyncio.to_thread(live.add, calls + bypass)

        clock.now = end
        posted = await watcher.evaluate() or []
        run.posted += posted
        if on_step is not None:
            on_step(end, posted)
        if any(p.action is Action.RECOVERY for p in posted):
            break
    return run


@dataclass
class SimulatedClock:
    """The time the watcher reads; the simulation moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def steps_needed(settings: Settings, plan: AttackPlan) -> int:
    """Enough steps for the bypass, a whole window after it, and the recovery."""
    from bot.windows import parse_duration

    span = plan.starts_after + plan.lasts + parse_duration(settings.watch_window)
    interval = timedelta(seconds=settings.watch_interval)
    return int(span / interval) + settings.watch_recovery_checks + 3


async def run_watch_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the stand-ins and the watcher through one bypass; print what it posts."""
    real_slack = bool(
        getattr(args, "slack", False)
        and settings.slack_bot_token
        and settings.alert_channel
    )
    start = simulation_start()
    scenario = incident(start, hours=HISTORY_HOURS, attack_hours=0)
    print("Starting stand-ins (CloudWatch, Tinybird, SSH host) on 127.0.0.1…")
    async with Stack(now=start, scenario=scenario) as stack:
        standin = None if real_slack else SlackApiStandIn(token=STANDIN_TOKEN).start()
        try:
            status = await _run(settings, stack, standin, start)
            if standin is not None:
                await _show_recorded(standin, args.out)
            return status
        finally:
            if standin is not None:
                standin.stop()


async def _run(
    settings: Settings, stack: Stack, standin: SlackApiStandIn | None, start: datetime
) -> int:
    watch_values = {
        name: getattr(settings, name)
        for name in Settings.model_fields
        if name.startswith("watch_") or name in ("timezone", "coverage")
    }
    if standin is None:
        assert settings.slack_bot_token is not None
        token, api_url = (
            settings.slack_bot_token.get_secret_value(),
            settings.slack_api_url,
        )
        channel = settings.alert_channel
    else:
        token, api_url, channel = STANDIN_TOKEN, standin.api_url, STANDIN_CHANNEL
    demo = stack.settings(alert_channel=channel, **watch_values)
    services = stack.services(demo)
    clock = SimulatedClock(start)
    watcher = Watcher(services, slack_client(token, api_url), clock=clock)
    live = LiveSources(stack.cloudwatch, stack.tinybird, stack.workdir / "journal.log")

    plan = DEFAULT_PLAN
    print(
        f"Simulated time starts {local_time(start, demo.timezone)}; one step is "
        f"{demo.watch_interval}s; the bypass runs from "
        f"{local_time(start + plan.starts_after, demo.timezone)} for "
        f"{plan.lasts}. Posting to {'Slack' if standin is None else 'the stand-in'}."
    )
    try:
        run = await simulate(
            watcher,
            live,
            start,
            plan,
            clock,
            steps_needed(demo, plan),
            on_step=lambda at, posted: _print_step(at, posted, demo.timezone),
        )
    finally:
        await watcher.close()
        await services.close()

    delay = run.detection_intervals()
    shown = "no alert" if delay is None else f"{delay:.2f} check intervals"
    print(f"\nDetection delay (first uncovered call to alert): {shown}")
    print(f"Messages posted: {len(run.posted)}")
    return 0 if delay is not None else 1


async def _show_recorded(standin: SlackApiStandIn, out: Path) -> None:
    """Everything the Slack stand-in received, and the uploaded charts on disk."""
    messages = standin.calls_to("chat.postMessage")
    uploads = [u for u in standin.uploads.values() if u.completed and u.content]
    print(
        f"\nThe Slack stand-in recorded {_many(len(messages), 'message')} and "
        f"{_many(len(uploads), 'file')}:"
    )
    for call in messages:
        where = (
            f"thread {call.params['thread_ts']}"
            if "thread_ts" in call.params
            else ("channel")
        )
        print(f"  {call.params['channel']} {where}: {call.params['text']}")
    if uploads:
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    for upload in uploads:
        path = out / f"watch-{upload.filename}"
        await asyncio.to_thread(path.write_bytes, upload.content or b"")
        print(f"  file in thread {upload.thread_ts}: {upload.title}, written to {path}")


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _print_step(at: datetime, posted: list[Posted], tz: str) -> None:
    stamp = local_time(at, tz)
    if not posted:
        print(f"{stamp}  evaluated: nothing to say")
    for message in posted:
        where = "thread" if message.thread_ts else "channel"
        files = f" (+ {', '.join(message.files)})" if message.files else ""
        print(f"{stamp}  {message.action.value} in {where}{files}: {message.text}")
        if message.action is Action.ALERT:
            for block in message.blocks:
                if block["type"] == "section":
                    print(_indented(block["text"]["text"]))


def _indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
