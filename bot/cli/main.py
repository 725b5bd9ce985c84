"""`usage-bot`: the same commands as in Slack, in a terminal.

stdout carries the answer (a table, or one JSON document with `--json`); logs go to
stderr. Exit status: 0 complete, 1 an answer with some source missing, 2 bad input
or configuration (and then no backend was called).
"""

import argparse
import asyncio
import getpass
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot import logs, messages
from bot.cli import answers
from bot.cli.answers import TerminalAnswer, TerminalPrepared
from bot.config import Settings, load_settings
from bot.errors import BotError, InputError
from bot.render import tables
from bot.services import Services, build_services

log = logging.getLogger(__name__)

EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT = 0, 1, 2
# Admin-only in Slack; in a terminal the SSH key is the gate, and each use is audited.
SECURITY_COMMANDS = frozenset({"ipcheck"})

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
Preparer = Callable[[str, Services], TerminalPrepared]


def print_answer(answer: TerminalAnswer, as_json: bool) -> None:
    """The answer on stdout: one JSON document, or titled tables."""
    if as_json:
        print(json.dumps(answer.doc, indent=2))
        return
    for table in answer.tables:
        print(f"\n{table.title}")
        print(tables.to_text(table))
        for note in table.notes:
            print(note)
    for note in answer.notes:
        print(note)
    for error in answer.doc.get("errors", []):
        print(f"! {error['source']}: {error['message']}")


def command_handler(name: str, prepare: Preparer) -> Handler:
    """A sub-command that validates its words, asks, prints, and writes charts."""

    async def handle(args: argparse.Namespace, settings: Settings) -> int:
        words = " ".join(args.words + [f for f in getattr(args, "flags", [])])
        services = build_services(settings)
        try:
            prepared = prepare(words, services)
        except InputError as exc:
            print(messages.bad_input(name, exc), file=sys.stderr)
            return EXIT_BAD_INPUT

        user = _os_user()
        if name in SECURITY_COMMANDS:
            try:
                await _audit(services, name, words, user)
            except SQLAlchemyError as exc:
                # No audit line, no answer: a security command is not run unrecorded.
                print(messages.audit_failed(name, exc), file=sys.stderr)
                return EXIT_BAD_INPUT

        started = time.monotonic()
        answer = await prepared()
        print_answer(answer, args.json)
        if args.plot and answer.charts:
            await asyncio.to_thread(args.plot.write_bytes, answer.charts[0].png)
            print(f"chart written to {args.plot}", file=sys.stderr)
        elif args.plot:
            print(messages.no_chart(name), file=sys.stderr)
        log.info(
            "command",
            extra={
                "command": name,
                "front": "cli",
                "user": user,
                "outcome": "partial" if answer.partial else "ok",
                "ms": round((time.monotonic() - started) * 1000),
            },
        )
        return EXIT_PARTIAL if answer.partial else EXIT_OK

    return handle


def _os_user() -> str:
    try:
        return getpass.getuser()
    except OSError:
        return "unknown"


async def _audit(services: Services, name: str, words: str, user: str) -> None:
    """Leave the same audit line a Slack use leaves, with the terminal's user."""
    log.info("security command", extra={"command": name, "user": user})
    store = await services.store()
    await store.audit(
        at=datetime.now(UTC),
        actor=f"cli:{user}",
        action=f"/{name}",
        target=words[:200],
        outcome="allowed",
        trigger="cli",
    )


def _add_query(
    commands: Any, name: str, summary: str, words: str, prepare: Preparer
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=summary)
    parser.add_argument("words", nargs="*", help=words)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--plot", type=Path, help="write the chart to this PNG file")
    parser.set_defaults(handler=command_handler(name, prepare), flags=[])
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usage-bot",
        description="Compare what the LLM provider billed with what the gateway "
        "logged, from Slack or from here.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    usage = _add_query(
        commands,
        "usage",
        "invocations, tokens, throttles and cost per model",
        "[MODEL|all] [WINDOW], e.g. opus 1h",
        answers.prepare_usage,
    )
    usage.add_argument(
        "--hourly",
        dest="flags",
        action="append_const",
        const="hourly",
        help="chart every period",
    )

    _add_query(
        commands,
        "coverage",
        "what the provider billed against what the gateway logged",
        "[MODEL|all|logs] [WINDOW], e.g. opus 1h",
        answers.prepare_coverage,
    )

    _add_query(
        commands,
        "ipcheck",
        "who calls the service, and who does so directly (service logs)",
        "[IP] [WINDOW], e.g. 1h or 203.0.113.9 6h",
        answers.prepare_ipcheck,
    )

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
