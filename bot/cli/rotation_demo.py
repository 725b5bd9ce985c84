"""`usage-bot demo --rotation`: a whole token rotation in a Slack thread, offline.

Two people carry the PLN_ENTER_TOKEN runbook to the end through the real Bolt app,
over signed HTTP as Slack would send it, while the bot posts to a local Slack
stand-in. Half-way the bot restarts on the same database; one click arrives twice;
a stranger is refused. Steps 3, 5 and 8 are checked against a GitHub stand-in, the
SSH host's `.env` and its IP logs, and the coverage of the expensive models. Every
message the bot sends is printed as it comes, then the audit log.
"""

import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.cli.rotations import rotation_report
from bot.config import Settings
from bot.rotation.service import RotationService
from bot.slack.app import build_app
from bot.slack.server import EVENTS_PATH, start_http
from bot.standins import slack_requests
from bot.standins.github import GitHubStandIn
from bot.standins.scenario import TOKEN_PREFIX, incident
from bot.standins.slack_api import RESPONSE_URL_METHOD, SlackApiStandIn, SlackCall
from bot.standins.ssh import FakeFile, format_ip_log
from bot.standins.stack import Stack

ALICE, BOB, MALLORY = "UALICE", "UBOB", "UMALLORY"
CHANNEL = "C0INCIDENT"
REPOSITORY = "pollinations/pollinations"
ENV_FILE = "/home/ubuntu/text.pollinations.ai/.env"
NEW_PREFIX = "Nw3x"
WAIT_SECONDS = 30.0


class Channel:
    """The incident channel: people send signed requests, and see what the bot says."""

    def __init__(self, slack: SlackApiStandIn, signing_secret: str) -> None:
        self.slack = slack
        self._secret = signing_secret
        self._http = httpx.AsyncClient(timeout=WAIT_SECONDS)
        self._url = ""
        self._number = 0
        self._shown = 0
        self._base = 0

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    def connect(self, url: str) -> None:
        """Send from now on to the bot listening at `url`."""
        self._url = url

    def begin(self) -> None:
        """From here on, `seen` counts what the bot says in answer."""
        self._base = len(self.slack.calls)

    async def command(self, user: str, text: str) -> None:
        """`user` types `/rotate-checklist TEXT`."""
        self.begin()
        self._number += 1
        await self._send(
            slack_requests.slash_command(
                "rotate-checklist",
                text,
                user=user,
                channel=CHANNEL,
                response_url=self.slack.response_url(f"r{self._number}"),
                trigger_id=f"trigger-{self._number}",
            )
        )

    def click_payload(self, user: str, action_id: str, value: str) -> dict[str, Any]:
        """The block_actions payload of one click, to deliver once or more."""
        self._number += 1
        return slack_requests.click(
            action_id,
            value,
            user=user,
            channel=CHANNEL,
            trigger_id=f"trigger-{self._number}",
            message_ts=self._checklist_ts(),
        )

    def _checklist_ts(self) -> str | None:
        # The message a person clicks in: the checklist, not a thread line.
        posted = [m for m in self.slack.messages_in(CHANNEL) if "thread_ts" not in m]
        return str(posted[-1]["ts"]) if posted else None

    async def deliver(self, payload: dict[str, Any]) -> None:
        """Slack delivering `payload` (again, when it retries)."""
        await self._send(slack_requests.payload_form(payload))

    async def click(self, user: str, action_id: str, value: str) -> None:
        """`user` clicks button `action_id` whose value is `value`."""
        self.begin()
        await self.deliver(self.click_payload(user, action_id, value))

    async def submit_prefixes(self, user: str, view: dict[str, Any]) -> None:
        """What Slack sends when `user` types both prefixes into the dialog."""
        self.begin()
        await self.deliver(
            slack_requests.prefix_submission(view, NEW_PREFIX, TOKEN_PREFIX, user=user)
        )

    async def seen(self, method: str, more: int = 1) -> list[SlackCall]:
        """Wait until the bot has made `more` calls to `method` since `begin`."""
        earlier = [c for c in self.slack.calls[: self._base] if c.method == method]
        count = len(earlier) + more
        calls = await self.slack.wait_for_async(method, count, timeout=WAIT_SECONDS)
        return calls[len(earlier) :]

    def show(self) -> None:
        """Print what the bot said since the last time, as people see it."""
        calls = self.slack.calls[self._shown :]
        self._shown += len(calls)
        for call in calls:
            line = _as_seen(call)
            if line:
                print(line)

    async def _send(self, form: dict[str, str]) -> None:
        self.show()
        response = await slack_requests.post_signed(
            self._http, self._url, form, self._secret
        )
        response.raise_for_status()
        ack = response.json() if response.content else {}
        if ack.get("text"):
            print(f"    (only they see) {ack['text']}")
        if ack.get("errors"):
            print(f"    (in the dialog) {ack['errors']}")


def _as_seen(call: SlackCall) -> str | None:
    params = call.params
    if call.method == "chat.postMessage" and params.get("thread_ts"):
        return f"  ↳ {params['text']}"
    if call.method == "chat.postMessage":
        return f"  [channel] {params['text']}"
    if call.method == "chat.update":
        return f"  [checklist updated] {params['text']}"
    if call.method == "chat.postEphemeral":
        return f"    (only <@{params['user']}> sees) {params['text']}"
    if call.method == RESPONSE_URL_METHOD:
        return f"    (reply) {params.get('text', '')}"
    if call.method == "views.open":
        return "    (a dialog opens, asking for the two 4-character prefixes)"
    return None


def _next_second() -> datetime:
    """A moment strictly after now at second resolution, as GitHub and stat give."""
    return datetime.fromtimestamp(math.floor(datetime.now(UTC).timestamp()) + 1, UTC)


async def run_rotation_demo(settings: Settings) -> int:
    """Start the stand-ins and play the rotation; print the thread and audit log."""
    now = datetime.now(UTC)
    print("Starting stand-ins (CloudWatch, Tinybird, SSH host, GitHub, Slack)…")
    bot_token, signing_secret = f"xoxb-{secrets.token_hex(8)}", secrets.token_hex(16)
    github_token = secrets.token_hex(12)
    async with Stack(now=now, scenario=incident(now, hours=2, attack_hours=0)) as stack:
        with (
            SlackApiStandIn(token=bot_token) as slack,
            GitHubStandIn(github_token, REPOSITORY) as github,
        ):
            demo = stack.settings(
                slack_bot_token=bot_token,
                slack_signing_secret=signing_secret,
                slack_api_url=slack.api_url,
                bot_admins=[ALICE, BOB],
                github_token=github_token,
                github_api_url=github.url,
                github_repository=REPOSITORY,
                rotation_env_file=ENV_FILE,
                timezone=settings.timezone,
            )
            channel = Channel(slack, signing_secret)
            try:
                await _play(stack, github, demo, channel)
            finally:
                await channel.close()
    return 0


@asynccontextmanager
async def _bot(stack: Stack, settings: Settings) -> AsyncIterator[str]:
    services = stack.services(settings)
    runner, port = await start_http(build_app(settings, services), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}{EVENTS_PATH}"
    finally:
        await runner.cleanup()
        await services.close()


async def _play(
    stack: Stack, github: GitHubStandIn, settings: Settings, channel: Channel
) -> None:
    async def step(title: str) -> None:
        channel.show()
        print(f"\n{title}")

    async with _bot(stack, settings) as url:
        channel.connect(url)
        await step("<@UALICE> types /rotate-checklist")
        await channel.command(ALICE, "")
        await channel.seen("chat.postMessage")

        await step("Alice generated the token locally; Bob updated the SOPS files")
        await channel.click(ALICE, "rotation_step_done", "1:1")
        await channel.seen("chat.postMessage")
        twice = channel.click_payload(BOB, "rotation_step_done", "1:2")
        channel.begin()
        await channel.deliver(twice)
        await channel.deliver(twice)  # Slack retried the same click
        await channel.seen("chat.postMessage")

        await step("Alice updated the GitHub secret and presses Verify on step 3")
        github.set_secret("PLN_ENTER_TOKEN", _next_second())
        await channel.click(ALICE, "rotation_step_verify", "1:3")
        await channel.seen("chat.postMessage")

        await step("Someone outside BOT_ADMINS tries to tick step 4")
        await channel.click(MALLORY, "rotation_step_done", "1:4")
        await channel.seen("chat.postEphemeral")

    await step("— the bot restarts; what it knows is in the database —")
    async with _bot(stack, settings) as url:
        channel.connect(url)
        await step("Bob skips the Worker (done by hand earlier), edits .env, verifies")
        await channel.click(BOB, "rotation_step_skip", "1:4")
        await channel.seen("chat.postMessage")
        stack.ssh.files[ENV_FILE] = FakeFile(
            mtime=int(_next_second().timestamp()), mode=0o600
        )
        await channel.click(BOB, "rotation_step_verify", "1:5")
        await channel.seen("chat.postMessage")
        for number in (6, 7):
            await channel.click(BOB, "rotation_step_done", f"1:{number}")
            await channel.seen("chat.postMessage")

        await step("Only the new token is used now; Alice verifies step 8")
        await _new_prefix_only(stack)
        await channel.click(ALICE, "rotation_step_verify", "1:8")
        (opened,) = await channel.seen("views.open")
        view = {**opened.params["view"], "id": "V0DEMO"}
        await channel.submit_prefixes(ALICE, view)
        await channel.seen("chat.postMessage")

        await step("Alice closes the rotation; Bob's late click is refused")
        await channel.click(ALICE, "rotation_close_done", "1")
        await channel.seen("chat.postMessage")
        await channel.click(BOB, "rotation_step_undo", "1:1")
        await channel.seen("chat.postEphemeral")
        await channel.command(BOB, "status")
        await channel.seen(RESPONSE_URL_METHOD)
        channel.show()

    await _print_audit(stack, settings)


async def _new_prefix_only(stack: Stack) -> None:
    """The gateway's calls after the switch, all with the new token's prefix."""
    # Stamped now: the check reads whole seconds up to the moment it runs.
    moment = datetime.now(UTC)
    lines = [
        format_ip_log(
            moment, "::ffff:172.69.59.125", "/openai", "claude-large", NEW_PREFIX
        )
        for _ in range(3)
    ]
    path = stack.workdir / "journal.log"
    with path.open("a", encoding="utf-8") as journal:
        journal.write("\n".join(lines) + "\n")


async def _print_audit(stack: Stack, settings: Settings) -> None:
    services = stack.services(settings)
    try:
        store = await services.store()
        view = await RotationService(store, settings).get(1)
        audit = await store.audit_entries(target="rotation:1", limit=1000)
    finally:
        await services.close()
    print("\n$ usage-bot rotations 1")
    print(rotation_report(view, audit))
