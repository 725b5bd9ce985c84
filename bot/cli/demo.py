"""`usage-bot demo`: every command on local stand-ins with a synthetic incident.

No cloud account is needed: moto plays CloudWatch, chDB plays Tinybird, a local
SSH server plays the service host. With Slack tokens set, `--slack` serves a real
workspace against the same stand-ins.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

from bot.cli.answers import TerminalPrepared
from bot.cli.main import Preparer, print_answer
from bot.config import Settings
from bot.errors import ConfigError
from bot.services import Services
from bot.standins.stack import Stack

# What a person on call would type first, in the order they would type it.
TOUR: list[tuple[str, str]] = [
    ("usage", "all 48h"),
    ("usage", "opus 48h"),
    ("coverage", "all 48h"),
    ("coverage", "opus 1h"),
    ("coverage", "logs 10m"),
    ("ipcheck", "1h"),
]


def tour_commands() -> dict[str, Preparer]:
    from bot.cli import answers

    return {
        "usage": answers.prepare_usage,
        "coverage": answers.prepare_coverage,
        "ipcheck": answers.prepare_ipcheck,
    }


async def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "rotation", False):
        from bot.cli.rotation_demo import run_rotation_demo

        return await run_rotation_demo(settings)
    if args.watch:
        from bot.cli.watch_demo import run_watch_demo

        return await run_watch_demo(args, settings)

    out: Path = args.out
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    print("Starting stand-ins (CloudWatch, Tinybird, SSH host) on 127.0.0.1…")
    async with Stack() as stack:
        assert stack.scenario is not None
        scenario = stack.scenario
        loaded = stack.timings["start_and_load_s"]
        print(
            f"Loaded 48h of synthetic traffic in {loaded:.1f}s:"
            f" {len(scenario.calls):,} billed calls, of which"
            f" {len(scenario.attack_calls()):,} bypassed the gateway from"
            f" {scenario.attack_start:%Y-%m-%d %H:%M} UTC on."
        )
        demo_settings = stack.settings(timezone=settings.timezone)
        services = stack.services(demo_settings)

        if args.slack:
            return await _serve_slack(settings, demo_settings, services)
        for name, words in TOUR:
            await _show(name, words, tour_commands()[name](words, services), out)
    return 0


async def _show(name: str, words: str, prepared: TerminalPrepared, out: Path) -> None:
    print(f"\n$ usage-bot {name} {words}")
    started = time.monotonic()
    answer = await prepared()
    print_answer(answer, as_json=False)
    for index, chart in enumerate(answer.charts):
        path = out / f"{name}-{words.replace(' ', '-')}-{index + 1}.png"
        await asyncio.to_thread(path.write_bytes, chart.png)
        print(f"chart: {path}")
    print(f"({time.monotonic() - started:.2f}s)")


async def _serve_slack(
    settings: Settings, demo_settings: Settings, services: Services
) -> int:
    from bot.slack.app import build_app
    from bot.slack.server import serve

    slack = demo_settings.model_copy(
        update={
            name: getattr(settings, name)
            for name in (
                "slack_bot_token",
                "slack_signing_secret",
                "slack_app_token",
                "slack_api_url",
                "port",
                "bot_admins",
                "alert_channel",
            )
        }
    )
    try:
        app = build_app(slack, services)
    except ConfigError as exc:
        print(f"demo --slack: {exc}", file=sys.stderr)
        return 2
    print("Serving Slack against the stand-ins; Ctrl-C to stop.")
    services.settings = slack
    await serve(slack, app, services)
    return 0
