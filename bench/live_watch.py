"""Detection delay in real time: `usage-bot watch` left running through a bypass.

The stand-ins run here and traffic is added every few seconds as the clock passes;
the watcher is the real console command in its own process, on the real clock,
with a 60-second WATCH_INTERVAL and the default 1-hour window and $5 threshold.
The bypass runs for four minutes at five times the demo's rate, so that a minute
of it is worth about $5; at the demo's rate the same check needs the default
5-minute interval and an hour of waiting. Run: `.venv/bin/python -m
bench.live_watch` (about 13 minutes).
"""

import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from bot.standins.cloudwatch import CREDENTIALS
from bot.standins.live import LiveSources, attack_calls, normal_calls
from bot.standins.scenario import incident
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.stack import Stack

TOKEN = "xoxb-live-bench"
CHANNEL = "C0LIVE"
INTERVAL_SECONDS = 60
ATTACK_AFTER, ATTACK_LASTS = timedelta(seconds=90), timedelta(minutes=4)
ATTACK_PER_HOUR = 2_300
FEED_EVERY_SECONDS = 5
# Up to a 5-minute period to leave the last interval, then two clean checks.
GIVE_UP_AFTER = timedelta(minutes=15)


def watch_env(stack: Stack, slack: SlackApiStandIn) -> dict[str, str]:
    """The environment `usage-bot watch` reads, pointing at the stand-ins."""
    settings = stack.settings()
    assert settings.tb_token is not None
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_ENDPOINT_URL": stack.cloudwatch.url,
        "TB_HOST": settings.tb_host,
        "TB_TOKEN": settings.tb_token.get_secret_value(),
        "JOURNAL_HOSTS": stack.ssh.target,
        "SSH_KEY_PATH": str(stack.ssh.client_key_path),
        "SSH_KNOWN_HOSTS": str(stack.ssh.known_hosts_path),
        "DATABASE_URL": f"sqlite:///{stack.workdir / 'live.db'}",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ALERT_CHANNEL": CHANNEL,
        "WATCH_INTERVAL": str(INTERVAL_SECONDS),
    }


async def feed_until_recovered(
    live: LiveSources, slack: SlackApiStandIn, start: datetime
) -> datetime | None:
    """Add each few seconds' calls as they happen; the first uncovered call's time."""
    rng = random.Random(5)
    attack_start, attack_end = start + ATTACK_AFTER, start + ATTACK_AFTER
    attack_end += ATTACK_LASTS
    fed, first = start, None
    while datetime.now(UTC) < start + GIVE_UP_AFTER:
        await asyncio.sleep(FEED_EVERY_SECONDS)
        now = datetime.now(UTC).replace(microsecond=0)
        bypass = attack_calls(
            max(fed, attack_start), min(now, attack_end), rng, ATTACK_PER_HOUR
        )
        if bypass and first is None:
            first = min(call.at for call in bypass)
        await asyncio.to_thread(live.add, normal_calls(fed, now, rng) + bypass)
        fed = now
        texts = [c.params["text"] for c in slack.calls_to("chat.postMessage")]
        if any("has recovered" in text for text in texts):
            break
    return first


async def main() -> None:
    started = time.monotonic()
    start = datetime.now(UTC).replace(microsecond=0)
    quiet = incident(start, hours=2, attack_hours=0)
    async with Stack(now=start, scenario=quiet) as stack:
        with SlackApiStandIn(token=TOKEN) as slack:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "watch", env=watch_env(stack, slack),
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            live = LiveSources(
                stack.cloudwatch, stack.tinybird, stack.workdir / "journal.log"
            )
            try:
                first = await feed_until_recovered(live, slack, start)
                # Two more intervals, to hear anything said after the recovery.
                await asyncio.sleep(2 * INTERVAL_SECONDS + FEED_EVERY_SECONDS)
            finally:
                process.terminate()
                status = await process.wait()
            report(slack, start, first, status, time.monotonic() - started)


def report(
    slack: SlackApiStandIn,
    start: datetime,
    first: datetime | None,
    status: int,
    wall: float,
) -> None:
    attack_start = start + ATTACK_AFTER
    print(
        f"interval {INTERVAL_SECONDS}s, window 1h, bypass {ATTACK_PER_HOUR} calls/h "
        f"from {attack_start:%H:%M:%S} to {attack_start + ATTACK_LASTS:%H:%M:%S}; "
        f"first uncovered call {first:%H:%M:%S}"
        if first
        else "no uncovered call was fed"
    )
    posts = slack.calls_to("chat.postMessage")
    for call in posts:
        where = "thread " if call.params.get("thread_ts") else "channel"
        print(f"{call.at:%H:%M:%S} {where}  {call.params['text']}")
    for upload in slack.uploads.values():
        print(
            f"file {upload.filename} in thread {upload.thread_ts}: {upload.completed}"
        )
    alert = next((c for c in posts if "Coverage alert" in c.params["text"]), None)
    if alert is not None and first is not None:
        delay = (alert.at - first).total_seconds()
        print(f"delay {delay:.0f}s = {delay / INTERVAL_SECONDS:.2f} check intervals")
    print(
        f"{len(posts)} messages; watch exited {status} on SIGTERM; "
        f"wall time {wall / 60:.1f} min"
    )


if __name__ == "__main__":
    asyncio.run(main())
