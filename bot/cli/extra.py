"""Sub-commands that run the bot rather than ask it: serve, demo."""

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add the long-running sub-commands to the parser."""
    serve = commands.add_parser("serve", help="run the Slack app")
    serve.set_defaults(handler=_serve)


async def _serve(args: argparse.Namespace, settings: Any) -> int:
    from bot.slack.server import serve

    await serve(settings)
    return 0
