"""No secret leaves its place: known values in the environment, every command run.

The Slack, Tinybird, AWS, GitHub and SSH secrets are set as an operator sets them,
every slash command, button and dialog is used through signed HTTP to the Bolt app,
and every terminal command (the queries, `watch --once`, `rotations`) runs in its
own process. None of the values may then be
found in anything sent to Slack (messages, ephemerals, response URLs, uploads), in
any log line (the bot's formatter, at its most verbose), in the terminal's output,
or in any database row. A whole token pasted by a person is treated the same way.
"""

import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import load_settings
from bot.logs import KeyValueFormatter
from bot.services import build_services
from bot.slack.app import build_app
from bot.slack.server import start_http
from bot.standins import slack_requests
from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.github import GitHubStandIn
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.ssh import FakeFile, SshStandin, format_ip_log, write_journal
from bot.standins.tinybird import TinybirdStandIn
from bot.store import Store
from bot.store.models import Base
from tests.slackbot import CHANNEL
from tests.test_rotation_processes import coverage_at_baseline_now
from tests.test_service_logs import ATTACKER, UNIT, journal

# Distinct, greppable values; none of them may ever leave where it was set.
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-7391-hygiene-bot-token-Qm4Zr8",
    "SLACK_SIGNING_SECRET": "hygiene-signing-secret-5c0ffee5c0ffee",
    "SLACK_APP_TOKEN": "xapp-1-hygiene-app-token-Vb93Lk",
    "TB_TOKEN": "p.hygiene-tinybird-token-eyJ1Ijo0Mn0",
    "AWS_ACCESS_KEY_ID": "AKIAHYGIENE7EXAMPLE0",
    "AWS_SECRET_ACCESS_KEY": "hygiene/Secret+Access/Key0123456789abcdEF",
    "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEHygieneSessionToken",
    "GITHUB_TOKEN": "ghp_hygieneGithubToken0123456789abcdef",
}
# A new token someone pastes in full where only its prefix belongs.
PASTED = "Nw3xq8ZyT5vLmK2pR7sWd4Fh6Jb9Cg1Ae0Uo3Ii5Yt"
ADMIN, OTHER, INTRUDER = "UADMIN", "UOTHER", "UINTRUDER"
REPOSITORY = "pollinations/pollinations"
ENV_FILE = "/home/ubuntu/text.pollinations.ai/.env"


class Finished(logging.Handler):
    """Counts the last line each command, click or dialog writes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() in {"command", "rotation"}:
            self.count += 1
            self._changed.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(30):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


@dataclass
class Logged:
    """Every log line the bot wrote, as its own formatter writes it."""

    stream: io.StringIO
    finished: Finished


@pytest.fixture
def logged() -> Iterator[Logged]:
    """The root logger at INFO, the bot's own loggers at DEBUG, one string buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter())
    finished = Finished()
    root, ours = logging.getLogger(), logging.getLogger("bot")
    levels = root.level, ours.level
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    root.addHandler(handler)
    root.addHandler(finished)
    yield Logged(stream, finished)
    root.removeHandler(handler)
    root.removeHandler(finished)
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


@dataclass
class Place:
    """The stand-ins, with the secrets set where the bot would find them."""

    slack: SlackApiStandIn
    github: GitHubStandIn
    host: SshStandin
    tinybird: TinybirdStandIn
    database_url: str
    journal: Path


@pytest.fixture
async def place(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cloudwatch: CloudWatchStandin,
    tinybird: TinybirdStandIn,
) -> AsyncIterator[Place]:
    now = datetime.now(UTC)
    coverage_at_baseline_now(cloudwatch, tinybird, now)
    path = write_journal(tmp_path / "journal.log", journal())
    files = {ENV_FILE: FakeFile(mtime=int(now.timestamp()) + 5, mode=0o600)}
    database_url = f"sqlite:///{tmp_path / 'bot.db'}"
    token = tinybird.token
    tinybird.token = SECRETS["TB_TOKEN"]
    try:
        with (
            SlackApiStandIn(token=SECRETS["SLACK_BOT_TOKEN"]) as slack,
            GitHubStandIn(SECRETS["GITHUB_TOKEN"], REPOSITORY) as github,
        ):
            github.set_secret("PLN_ENTER_TOKEN", now + timedelta(minutes=1))
            async with SshStandin(tmp_path / "ssh", {UNIT: path}, files) as host:
                environment = {
                    **SECRETS,
                    "SLACK_API_URL": slack.api_url,
                    "BOT_ADMINS": f"{ADMIN},{OTHER}",
                    "DATABASE_URL": database_url,
                    "GITHUB_API_URL": github.url,
                    "GITHUB_REPOSITORY": REPOSITORY,
                    "TB_HOST": tinybird.url,
                    "JOURNAL_HOSTS": host.target,
                    "JOURNAL_UNIT": UNIT,
                    "SSH_KEY_PATH": str(host.client_key_path),
                    "SSH_KNOWN_HOSTS": str(host.known_hosts_path),
                    "AWS_ENDPOINT_URL": cloudwatch.url,
                    "ALERT_CHANNEL": "C0ALERTS",
                }
                for name, value in environment.items():
                    monkeypatch.setenv(name, value)
                yield Place(slack, github, host, tinybird, database_url, path)
    finally:
        tinybird.token = token


class Person:
    """Someone in the incident channel, typing and clicking through Slack."""

    def __init__(self, url: str, http: httpx.AsyncClient, slack: SlackApiStandIn):
        self._url, self._http, self._slack = url, http, slack
        self._number = 0

    async def _send(self, form: dict[str, str]) -> httpx.Response:
        secret = SECRETS["SLACK_SIGNING_SECRET"]
        response = await slack_requests.post_signed(self._http, self._url, form, secret)
        assert response.status_code == 200, response.text
        return response

    def _next(self) -> int:
        self._number += 1
        return self._number

    async def command(self, name: str, text: str, user: str = ADMIN) -> str:
        number = self._next()
        response = await self._send(
            slack_requests.slash_command(
                name,
                text,
                user=user,
                channel=CHANNEL,
                response_url=self._slack.response_url(f"r{number}"),
                trigger_id=f"trigger-{number}",
            )
        )
        return response.text

    async def click(self, action_id: str, value: str, user: str = ADMIN) -> str:
        number = self._next()
        payload = slack_requests.click(
            action_id, value, user=user, channel=CHANNEL, trigger_id=f"trigger-{number}"
        )
        response = await self._send(slack_requests.payload_form(payload))
        return response.text

    async def submit_prefixes(self, new: str, old: str) -> str:
        view = {"id": f"V{self._next()}", "type": "modal", "private_metadata": "1:8"}
        payload = slack_requests.prefix_submission(view, new, old, user=ADMIN)
        response = await self._send(slack_requests.payload_form(payload))
        return response.text


# Every slash command and every button, in the order an incident would use them;
# each entry writes exactly one "command" or "rotation" line when it is done.
SLASH_COMMANDS = [
    ("usage", "all 48h"),
    ("usage", "opus 6h"),
    ("usage", f"opus {PASTED}"),
    ("coverage", "all 1h"),
    ("coverage", "opus 1h"),
    ("coverage", "logs 1h"),
    ("ipcheck", "1h"),
    ("ipcheck", f"{ATTACKER} 1h"),
    ("ipcheck", PASTED),
    ("ipcheck", "1h", INTRUDER),
]
ROTATION = [
    ("command", ""),
    ("click", "rotation_step_done", "1:1"),
    ("click", "rotation_step_skip", "1:2", OTHER),
    ("click", "rotation_step_undo", "1:2", OTHER),
    ("click", "rotation_step_done", "1:2", OTHER),
    ("click", "rotation_step_verify", "1:3"),
    ("click", "rotation_step_done", "1:4"),
    ("click", "rotation_step_verify", "1:5"),
    ("click", "rotation_step_done", "1:6", OTHER),
    ("click", "rotation_step_done", "1:7", OTHER),
    ("click", "rotation_step_done", "1:1", INTRUDER),
    ("click", "rotation_step_verify", "1:8"),
    ("dialog", PASTED, "pk7Q"),
    ("command", f"verify 1 {PASTED} pk7Q"),
    ("command", f"{PASTED}"),
    ("dialog", "Nw3x", "pk7Q"),
    ("command", "verify 1 Nw3x pk7Q"),
    ("command", "status"),
    ("click", "rotation_close_done", "1"),
    ("click", "rotation_start", "claude-large"),
    ("command", "status"),
    ("click", "rotation_close_abandon", "2"),
    ("command", "close 2 abandoned"),
]


async def run_everything_in_slack(place: Place, logged: Logged) -> list[str]:
    """Every slash command, the rotation's buttons and dialog; the acks' bodies."""
    settings = load_settings()
    services = build_services(settings)
    runner, port = await start_http(build_app(settings, services), "127.0.0.1", 0)
    acks: list[str] = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            person = Person(f"http://127.0.0.1:{port}/slack/events", http, place.slack)
            for name, text, *user in SLASH_COMMANDS:
                before = logged.finished.count
                acks.append(await person.command(name, text, *user))
                await logged.finished.wait(before + 1)
            for kind, *args in ROTATION:
                before = logged.finished.count
                if kind == "command":
                    acks.append(await person.command("rotate-checklist", *args))
                elif kind == "click":
                    acks.append(await person.click(*args))
                else:
                    acks.append(await person.submit_prefixes(*args))
                if args[:2] == ["rotation_step_done", "1:7"]:
                    # The IP logs since step 7 show the new prefix only.
                    write_journal(place.journal, _new_prefix_lines())
                await logged.finished.wait(before + 1)
    finally:
        await runner.cleanup()
        await services.close()
    return acks


def _new_prefix_lines() -> list[str]:
    now = datetime.now(UTC)
    return [
        format_ip_log(now, "::ffff:172.69.59.125", "/openai", "claude-large", "Nw3x")
        for _ in range(3)
    ]


async def run_every_terminal_command(place: Place) -> str:
    """`usage-bot -v ...` for each terminal command, in its own process: out, err."""
    printed = []
    for words in (
        ["usage", "all", "48h"],
        ["usage", "opus", "6h", "--plot", str(place.journal.parent / "u.png")],
        ["coverage", "all", "1h", "--json"],
        ["coverage", "logs", "1h"],
        ["ipcheck", "1h", "--json"],
        ["usage", PASTED],
        ["watch", "--once"],
        ["rotations"],
        ["rotations", "1", "--json"],
        ["rotations", PASTED],
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "-v", *words,
            env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode in (0, 1, 2), err.decode()
        printed.append(out.decode() + err.decode())
    return "\n".join(printed)


async def every_row(database_url: str) -> str:
    store = await Store.open(database_url)
    try:

        def dump(session: Any) -> str:
            return "\n".join(
                repr(row)
                for table in Base.metadata.sorted_tables
                for row in session.execute(table.select())
            )

        return await store.run(dump)
    finally:
        await store.close()


async def test_no_secret_leaves_its_place(place: Place, logged: Logged) -> None:
    """Nothing sent, logged, printed or stored holds a secret or a pasted token."""
    acks = await run_everything_in_slack(place, logged)
    printed = await run_every_terminal_command(place)
    rows = await every_row(place.database_url)

    sent = json.dumps([call.params for call in place.slack.calls], default=str)
    uploads = [upload.content or b"" for upload in place.slack.uploads.values()]
    named = json.dumps(
        [(u.filename, u.title, u.initial_comment) for u in place.slack.uploads.values()]
    )
    log_text = logged.stream.getvalue()
    key = place.host.client_key_path.read_text().splitlines()[1]
    for value in [*SECRETS.values(), PASTED, key]:
        assert value not in sent
        assert value not in named
        assert all(value.encode() not in content for content in uploads)
        assert value not in log_text
        assert value not in printed
        assert value not in rows
        assert all(value not in ack for ack in acks)
    # The run really went everywhere it claims to have gone.
    methods = {call.method for call in place.slack.calls}
    assert {"chat.postMessage", "chat.update", "chat.postEphemeral"} <= methods
    assert {"files.completeUploadExternal", "response_url", "views.open"} <= methods
    assert len(uploads) >= 2 and all(content[:4] == b"\x89PNG" for content in uploads)
    assert place.github.requests and place.host.commands
    assert "Rotate PLN_ENTER_TOKEN: 8 of 8 done" in sent
    assert "closed this rotation as abandoned" in sent
    assert "verified step 8: passed." in sent
    assert log_text.count(" command ") >= len(SLASH_COMMANDS)
    assert "Service logs against the gateway, last 1h" in printed
    assert '"evidence": "updated_at ' in printed and "Token rotations" in printed
    assert '"token_prefixes": {' in printed and "Bedrock usage, last 48h" in printed


@pytest.mark.parametrize(
    ("typed", "quoted"),
    [
        ("99x", "'99x'"),
        ("203.0.113.255:8080", "'203.0.113.255:8080'"),
        (PASTED, "42 characters (not repeated: it may be a secret)"),
        (SECRETS["AWS_ACCESS_KEY_ID"], "20 characters"),
    ],
    ids=["window", "longest-echoed", "pasted-token", "aws-key-id"],
)
def test_errors_repeat_short_text_and_only_the_length_of_long_text(
    typed: str, quoted: str
) -> None:
    """What a person typed comes back in an error only while it cannot be a token."""
    from bot.errors import echo

    assert echo(typed).startswith(quoted)
