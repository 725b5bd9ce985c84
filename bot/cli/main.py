"""`usage-bot`: the same commands as in Slack, in a terminal.

stdout carries the answer (a table, or one JSON document with `--json`); logs go to
stderr. Exit status: 0 complete, 1 an answer with some source missing, 2 bad input
or configuration (and then no backend was called).
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot import logs, messages
from bot.commands.charts import usage_png
from bot.commands.usage import parse_usage, run_usage
from bot.config import Settings, load_settings
from bot.errors import BotError, InputError
from bot.render import jsondoc, tables
from bot.services import build_services

EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT = 0, 1, 2

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def emit(args: argparse.Namespace, doc: dict[str, Any], table: tables.Table) -> None:
    """Print the answer in the form asked for."""
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(table.title)
    print(tables.to_text(table))
    for note in table.notes:
        print(note)
    for error in doc.get("errors", []):
        print(f"! {error['source']}: {error['message']}")


async def _usage(args: argparse.Namespace, settings: Settings) -> int:
    words = " ".join(args.words + (["hourly"] if args.hourly else []))
    try:
        request = parse_usage(words, settings)
    except InputError as exc:
        print(messages.bad_input("usage", exc), file=sys.stderr)
        return EXIT_BAD_INPUT

    report = await run_usage(request, build_services(settings))
    emit(args, jsondoc.usage_doc(report), tables.usage_table(report))
    if args.plot and report.rows:
        args.plot.write_bytes(await usage_png(report, settings.timezone))
        print(f"chart written to {args.plot}", file=sys.stderr)
    return EXIT_PARTIAL if report.errors else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usage-bot",
        description="Compare what the LLM provider billed with what the gateway "
        "logged, from Slack or from here.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    usage = commands.add_parser("usage", help="invocations, tokens and cost per model")
    usage.add_argument("words", nargs="*", help="[MODEL|all] [WINDOW], e.g. opus 1h")
    usage.add_argument("--json", action="store_true", help="one JSON document")
    usage.add_argument("--hourly", action="store_true", help="chart every period")
    usage.add_argument("--plot", type=Path, help="write the chart to this PNG")
    usage.set_defaults(handler=_usage)

    from bot.cli import extra

    extra.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `usage-bot` console script and of `python -m bot`."""
    args = build_parser().parse_args(argv)
    logs.configure(verbose=args.verbose)
    try:
        settings = load_settings()
    except (BotError, ValidationError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    handler: Handler = args.handler
    return asyncio.run(handler(args, settings))
