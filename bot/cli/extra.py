"""Sub-commands that run the bot rather than ask it: serve and demo."""

import argparse
from pathlib import Path
from typing import Any

from bot.config import Settings


def register(commands: Any) -> None:
    """Add the long-running sub-commands to the parser."""
    serve = commands.add_parser("serve", help="run the Slack app")
    serve.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104
        help="HTTP mode: the address to listen on (default: every interface)",
    )
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo", help="run every command on local stand-ins with a synthetic incident"
    )
    demo.add_argument(
        "--out", type=Path, default=Path("demo-out"), help="where charts are written"
    )
    demo.add_argument(
        "--slack",
        action="store_true",
        help="serve Slack (tokens from the environment) against the stand-ins",
    )
    demo.add_argument(
        "--watch",
        action="store_true",
        help="let a bypass start and stop while the watcher alerts (simulated time)",
    )
    demo.add_argument(
        "--rotation",
        action="store_true",
        help="two people rotate a token in a Slack thread, the bot restarting",
    )
    demo.set_defaults(handler=_demo)

    watch = commands.add_parser(
        "watch", help="alert the incident channel when coverage drops"
    )
    watch.add_argument(
        "--once", action="store_true", help="evaluate once and exit (cron, tests)"
    )
    watch.set_defaults(handler=_watch)

    from bot.cli import rotations

    rotations.register(commands)


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.slack.server import serve

    await serve(settings, host=args.host)
    return 0


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cli.demo import run_demo

    return await run_demo(args, settings)


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from bot.watch.runner import run_watch

    return await run_watch(settings, once=args.once)
