"""Detection delay: from the first uncovered call to the alert, in check intervals.

The demo's bypass (Opus called directly, about 460 calls an hour) is started at
several offsets inside a check interval, each on its own stretch of simulated
time and its own alert database, against the real stand-ins; the watcher runs
step by step on a simulated clock. Run: `.venv/bin/python -m bench.detection_delay`.
"""

import asyncio
import random
import time
from datetime import timedelta

from bot.cli.watch_demo import (
    AttackPlan,
    SimulatedClock,
    WatchRun,
    simulate,
    simulation_start,
    steps_needed,
)
from bot.standins.live import LiveSources, normal_calls
from bot.standins.scenario import incident
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.stack import Stack
from bot.watch.watcher import Watcher, slack_client

TOKEN = "xoxb-bench"
OFFSETS_SECONDS = [0, 30, 90, 150, 210, 270]
TRIAL_SPACING = timedelta(hours=4)


async def trial(
    stack: Stack, slack: SlackApiStandIn, number: int, offset: int
) -> WatchRun:
    start = stack.now + number * TRIAL_SPACING
    settings = stack.settings(
        alert_channel="C0BENCH",
        database_url=f"sqlite:///{stack.workdir / f'trial-{number}.db'}",
    )
    live = LiveSources(stack.cloudwatch, stack.tinybird, stack.workdir / "journal.log")
    if number:
        # Each later trial needs a window of ordinary traffic before it starts.
        warm = normal_calls(start - timedelta(hours=1), start, random.Random(number))
        await asyncio.to_thread(live.add, warm)

    services = stack.services(settings)
    clock = SimulatedClock(start)
    watcher = Watcher(
        services, slack_client(TOKEN, slack.api_url), clock=clock, holder=f"t{number}"
    )
    # Starting after 10 quiet minutes leaves the first evaluations a clean baseline.
    plan = AttackPlan(
        starts_after=timedelta(minutes=10, seconds=offset), lasts=timedelta(minutes=40)
    )
    try:
        return await simulate(
            watcher, live, start, plan, clock, steps_needed(settings, plan), seed=number
        )
    finally:
        await watcher.close()
        await services.close()


async def main() -> None:
    started = time.monotonic()
    now = simulation_start()
    async with Stack(now=now, scenario=incident(now, hours=2, attack_hours=0)) as stack:
        with SlackApiStandIn(token=TOKEN) as slack:
            runs = [
                await trial(stack, slack, number, offset)
                for number, offset in enumerate(OFFSETS_SECONDS)
            ]
    interval = runs[0].interval.total_seconds()
    print(f"check interval {interval:.0f}s, watch window 1h, bypass ~460 calls/h")
    print("attack starts   first uncovered   alert at   delay (intervals)   messages")
    delays = []
    for offset, run in zip(OFFSETS_SECONDS, runs, strict=True):
        delay = run.detection_intervals()
        alert = next(p for p in run.posted if p.action.value == "alert")
        first = run.first_uncovered_call
        assert delay is not None and first is not None
        delays.append(delay)
        print(
            f"+{offset:>3}s into it   {first:%H:%M:%S}          "
            f"{alert.at:%H:%M:%S}   {delay:>6.2f}              "
            f"{', '.join(p.action.value for p in run.posted)}"
        )
    print(
        f"worst {max(delays):.2f}, mean {sum(delays) / len(delays):.2f} check "
        f"intervals (goal <= 2); wall time {time.monotonic() - started:.1f}s"
    )


if __name__ == "__main__":
    asyncio.run(main())
