"""`/rotate-checklist` and its buttons: one message per rotation, updated in place.

Every listener reads the rotation from the store and writes it back there, so a
restarted bot, or another process on the same DATABASE_URL, carries on from any
click. Slash commands do not work inside threads, so the buttons carry everything.
"""

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.access import Admins
from bot.config import Settings
from bot.errors import BotError, InputError, NotAllowed, SourceError
from bot.render import rotation_blocks as render
from bot.rotation.adapters import (
    JournalPrefixLog,
    SshRemoteFiles,
    check_coverage_baseline,
    combine,
)
from bot.rotation.checks import CheckResult, CheckRunner, token_prefix
from bot.rotation.runbook import DEFAULT_RUNBOOKS, runbook_for
from bot.rotation.service import (
    ActionOutcome,
    ActionResult,
    RotationService,
    RotationView,
)
from bot.services import Services
from bot.watch.alerts import ROTATION_ACTION

log = logging.getLogger(__name__)

COMMAND = "/rotate-checklist"
DEFAULT_ROTATION = "PLN_ENTER_TOKEN"
PREFIX_CHECK = "ip_logs_prefix"
USAGE = messages.USAGE_HINTS["rotate-checklist"]
# Rewrites of the checklist per click when other processes keep changing it.
MAX_REFRESHES = 3

_ROTATION_ID = re.compile(r"[1-9][0-9]{0,9}")
_STEP_NUMBER = re.compile(r"[1-9][0-9]{0,2}")
_STEP_ACTIONS = {
    render.ACTION_DONE: "done",
    render.ACTION_SKIP: "skip",
    render.ACTION_UNDO: "undo",
}
_CLOSE_ACTIONS = {
    render.ACTION_CLOSE_DONE: "done",
    render.ACTION_CLOSE_ABANDON: "abandoned",
}
_OUTCOMES = ("done", "abandoned")


@dataclass(frozen=True)
class Start:
    """`/rotate-checklist [TOKEN_NAME]`."""

    token: str


@dataclass(frozen=True)
class Status:
    """`/rotate-checklist status`."""


@dataclass(frozen=True)
class Close:
    """`/rotate-checklist close ID done|abandoned`."""

    rotation_id: int
    outcome: str


@dataclass(frozen=True)
class Verify:
    """`/rotate-checklist verify ID NEW_PREFIX OLD_PREFIX`: the modal's twin."""

    rotation_id: int
    new_prefix: str
    old_prefix: str


RotationCommand = Start | Status | Close | Verify


def parse_command(text: str, settings: Settings) -> RotationCommand:
    """Read the command's text; errors never repeat it: it may hold a pasted token."""
    words = text.split()
    if not words:
        return Start(_token_name(DEFAULT_ROTATION, settings))
    head, rest = words[0].lower(), words[1:]
    if head == "status" and not rest:
        return Status()
    if head == "close":
        if len(rest) != 2 or rest[1].lower() not in _OUTCOMES:
            raise InputError(
                "close needs a rotation id and done or abandoned, e.g. `close 3 done`"
            )
        return Close(rotation_id(rest[0]), rest[1].lower())
    if head == "verify":
        if len(rest) != 3:
            raise InputError(
                "verify needs a rotation id, the new token prefix and the old one, "
                "e.g. `verify 3 Ab12 pk7Q`"
            )
        return Verify(
            rotation_id(rest[0]),
            token_prefix(rest[1], "new token prefix"),
            token_prefix(rest[2], "old token prefix"),
        )
    if len(words) == 1:
        return Start(_token_name(words[0], settings))
    raise InputError(
        f"expected a token name or status, close, verify but got {len(words)} words"
    )


def rotation_id(text: str) -> int:
    """A rotation id: a whole number from 1."""
    if _ROTATION_ID.fullmatch(text) is None:
        raise InputError(
            f"rotation id must be a whole number but got {len(text)} characters"
        )
    return int(text)


def step_value(value: str) -> tuple[int, int]:
    """A step button's value, `<rotation id>:<step number>`."""
    rotation, sep, step = value.partition(":")
    if (
        not sep
        or _ROTATION_ID.fullmatch(rotation) is None
        or _STEP_NUMBER.fullmatch(step) is None
    ):
        raise InputError("button value must be <rotation id>:<step number>")
    return int(rotation), int(step)


def _token_name(word: str, settings: Settings) -> str:
    runbooks = {**DEFAULT_RUNBOOKS, **settings.runbooks}
    known = sorted(name for name, steps in runbooks.items() if steps)
    chosen = word.upper()
    if chosen not in known:
        raise InputError(
            f"token must be one with a runbook ({', '.join(known)}) but got another"
            " name"
        )
    steps = len(runbook_for(chosen, settings))
    if steps > render.MAX_STEPS:
        raise InputError(
            f"runbook for {chosen} has {steps} steps but one Slack message holds "
            f"at most {render.MAX_STEPS}"
        )
    return chosen


def click_request_id(body: dict[str, Any], action: dict[str, Any]) -> str | None:
    """One id per click, the same for each redelivery of it."""
    stamp = action.get("action_ts") or body.get("trigger_id")
    if not stamp:
        return None
    user = body.get("user", {}).get("id", "")
    return f"{stamp}:{user}:{action.get('action_id')}:{action.get('value')}"[:200]


def register(app: AsyncApp, services: Services) -> None:
    """Add the rotation's command and button listeners to the app."""
    flow = RotationFlow(services, Admins(services.settings, app.client))

    async def on_command(
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await flow.command(ack, body, respond, client)

    async def on_step(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await flow.step_clicked(body, client)

    async def on_verify(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await flow.verify_clicked(body, client)

    async def on_close(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await flow.close_clicked(body, client)

    async def on_start(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await flow.start_clicked(body, client)

    async def on_prefixes(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await flow.prefixes_submitted(ack, body, client)

    app.command(COMMAND)(on_command)
    for action_id in _STEP_ACTIONS:
        app.action(action_id)(on_step)
    app.action(render.ACTION_VERIFY)(on_verify)
    for action_id in _CLOSE_ACTIONS:
        app.action(action_id)(on_close)
    app.view(render.PREFIX_VIEW)(on_prefixes)
    app.action(ROTATION_ACTION)(on_start)


class RotationFlow:
    """What each command, click and dialog does; the state lives in the store."""

    def __init__(self, services: Services, admins: Admins) -> None:
        self._services = services
        self._settings = services.settings
        self._admins = admins
        # One message update at a time per rotation, so an older view never lands
        # after a newer one from this process.
        self._locks: dict[int, asyncio.Lock] = {}

    async def command(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        """Refuse or ack at once, then do the work and answer if there is news."""
        started = time.monotonic()
        user, channel = body.get("user_id", ""), body.get("channel_id", "")
        request_id = body.get("trigger_id") or None
        parsed: RotationCommand | InputError
        try:
            parsed = parse_command(body.get("text", ""), self._settings)
        except InputError as exc:
            parsed = exc

        outcome = "ok"
        if not isinstance(parsed, Status) and not await self._admins.allows(user):
            outcome = "refused"
            await ack(response_type="ephemeral", text=messages.NOT_ALLOWED)
            await self._deny(user, COMMAND, _subcommand(parsed), request_id, channel)
        elif isinstance(parsed, InputError):
            outcome = "bad-input"
            await ack(response_type="ephemeral", text=f"{parsed}\nUsage: `{USAGE}`")
        else:
            await ack(response_type="ephemeral", text=_working(parsed))
            try:
                reply = await self._run(parsed, user, channel, request_id, client)
            except BotError as exc:
                outcome, reply = "error", _for_user(exc)
            except Exception:
                log.exception("rotation command failed")
                outcome, reply = "crash", messages.INTERNAL_ERROR
            if reply:
                await respond(response_type="ephemeral", text=reply)
        _log_use("command", _subcommand(parsed), user, outcome, started)

    async def step_clicked(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Done, Skip or Undo on one step."""
        action = _action(body)
        verb = _STEP_ACTIONS[action["action_id"]]

        async def work(user: str, channel: str) -> None:
            rotation, step = step_value(str(action.get("value", "")))
            service = await self._service()
            result = await service.act(
                rotation, step, verb, user, click_request_id(body, action)
            )
            await self._publish(
                client, result, render.step_line(user, verb, step), user, channel
            )

        await self._guarded(body, client, f"step.{verb}", work)

    async def start_clicked(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """The watcher's alert button: start the default rotation in that channel."""
        action = _action(body)

        async def work(user: str, channel: str) -> None:
            token = _token_name(DEFAULT_ROTATION, self._settings)
            problem = await self._start(
                token, user, channel, click_request_id(body, action), client
            )
            if problem is not None:
                await self._ephemeral(client, channel, user, problem)

        await self._guarded(body, client, "rotation.start", work)

    async def close_clicked(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Close as done, or abandon."""
        action = _action(body)
        outcome = _CLOSE_ACTIONS[action["action_id"]]

        async def work(user: str, channel: str) -> None:
            await self._close(
                rotation_id(str(action.get("value", ""))),
                outcome,
                user,
                channel,
                click_request_id(body, action),
                client,
            )

        await self._guarded(body, client, "rotation.close", work)

    async def verify_clicked(
        self, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Run a step's check, or ask for the token prefixes first."""
        action = _action(body)

        async def work(user: str, channel: str) -> None:
            rotation, step = step_value(str(action.get("value", "")))
            view = await self._open_view(rotation, step)
            if view.step(step).check == PREFIX_CHECK:
                await self._ask_prefixes(client, body, view, step, user, channel)
                return
            result = await self._check(view, step)
            await self._record(
                client,
                view,
                step,
                result,
                user,
                channel,
                click_request_id(body, action),
            )

        await self._guarded(body, client, "step.check", work)

    async def prefixes_submitted(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The prefix dialog: validate in the dialog, then check like a click."""
        started = time.monotonic()
        view = body.get("view", {})
        user = body.get("user", {}).get("id", "")
        request_id = f"view:{view.get('id')}"
        if not await self._admins.allows(user):
            # The refusal shows in the dialog itself: it has no channel to post to.
            refusal = {render.NEW_PREFIX_BLOCK: messages.NOT_ALLOWED}
            await ack(response_action="errors", errors=refusal)
            await self._deny(user, "step.check", "prefix-dialog", request_id, "")
            _log_use("dialog", "verify", user, "refused", started)
            return

        prefixes, errors = _typed_prefixes(view.get("state", {}).get("values", {}))
        if errors:
            await ack(response_action="errors", errors=errors)
            _log_use("dialog", "verify", user, "bad-input", started)
            return
        await ack()

        outcome = "ok"
        try:
            rotation, step = step_value(str(view.get("private_metadata", "")))
            await self._verify_prefixes(
                client, rotation, step, *prefixes, user, None, request_id
            )
        except BotError as exc:
            outcome = "error"
            await self._tell_in_rotation(client, view, user, _for_user(exc))
        except Exception:
            outcome = "crash"
            log.exception("rotation dialog failed")
        _log_use("dialog", "verify", user, outcome, started)

    async def _run(
        self,
        command: RotationCommand,
        user: str,
        channel: str,
        request_id: str | None,
        client: AsyncWebClient,
    ) -> str | None:
        if isinstance(command, Start):
            return await self._start(command.token, user, channel, request_id, client)
        if isinstance(command, Status):
            return await self._status(client)
        if isinstance(command, Close):
            await self._close(
                command.rotation_id, command.outcome, user, channel, request_id, client
            )
            return None
        view = await self._service_view(command.rotation_id)
        step = _prefix_step(view)
        await self._verify_prefixes(
            client,
            command.rotation_id,
            step,
            command.new_prefix,
            command.old_prefix,
            user,
            channel,
            request_id,
        )
        return None

    async def _start(
        self,
        token: str,
        user: str,
        channel: str,
        request_id: str | None,
        client: AsyncWebClient,
    ) -> str | None:
        service = await self._service()
        view = await service.start(token, channel, user, request_id)
        if view.message_ts is not None:
            return None  # a redelivered command: the checklist is already posted
        text, blocks = render.checklist_message(view, self._settings.timezone)
        try:
            posted = await client.chat_postMessage(
                channel=channel, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            return (
                f"Rotation #{view.id} is open, but the checklist could not be posted "
                f"here ({exc.response.get('error')}); invite the bot to this channel "
                f"or close it with `/rotate-checklist close {view.id} abandoned`."
            )
        await service.attach_message(view.id, str(posted["channel"]), str(posted["ts"]))
        return None

    async def _status(self, client: AsyncWebClient) -> str:
        service = await self._service()
        entries = []
        for view in await service.list_open():
            entries.append((view, await self._permalink(client, view)))
        return render.status_lines(entries, self._settings.timezone)

    async def _close(
        self,
        rotation: int,
        outcome: str,
        user: str,
        channel: str,
        request_id: str | None,
        client: AsyncWebClient,
    ) -> None:
        service = await self._service()
        result = await service.close(rotation, outcome, user, request_id)
        await self._publish(
            client, result, render.close_line(user, outcome), user, channel
        )

    async def _verify_prefixes(
        self,
        client: AsyncWebClient,
        rotation: int,
        step: int,
        new_prefix: str,
        old_prefix: str,
        user: str,
        channel: str | None,
        request_id: str | None,
    ) -> None:
        view = await self._open_view(rotation, step)
        if view.step(step).check != PREFIX_CHECK:
            raise InputError(f"step {step} does not check the IP logs")
        result = await self._check(view, step, new_prefix, old_prefix)
        await self._record(
            client, view, step, result, user, channel or view.channel, request_id
        )

    async def _check(
        self,
        view: RotationView,
        step: int,
        new_prefix: str | None = None,
        old_prefix: str | None = None,
    ) -> CheckResult:
        runner = CheckRunner(
            self._settings,
            files=SshRemoteFiles.from_settings(self._settings),
            env_file=self._settings.rotation_env_file,
            prefix_log=JournalPrefixLog.from_settings(self._settings),
        )
        if view.step(step).check != PREFIX_CHECK:
            return await runner.run(view, step)
        logs, coverage = await asyncio.gather(
            runner.run(view, step, new_prefix, old_prefix),
            check_coverage_baseline(self._services, datetime.now(UTC)),
        )
        return combine(PREFIX_CHECK, [logs, coverage])

    async def _record(
        self,
        client: AsyncWebClient,
        view: RotationView,
        step: int,
        result: CheckResult,
        user: str,
        channel: str,
        request_id: str | None,
    ) -> None:
        service = await self._service()
        recorded = await service.record_check(
            view.id, step, result.passed, result.evidence, user, request_id
        )
        line = render.check_line(user, step, result)
        await self._publish(client, recorded, line, user, channel)

    async def _ask_prefixes(
        self,
        client: AsyncWebClient,
        body: dict[str, Any],
        view: RotationView,
        step: int,
        user: str,
        channel: str,
    ) -> None:
        try:
            await client.views_open(
                trigger_id=body.get("trigger_id", ""),
                view=render.prefix_modal(view.id, step),
            )
        except SlackApiError as exc:
            await self._ephemeral(
                client,
                channel,
                user,
                f"Slack could not open the prefix dialog "
                f"({exc.response.get('error')}). Type `/rotate-checklist verify "
                f"{view.id} NEW OLD` with the first 4 characters of the new and the "
                "old token instead; never the whole token.",
            )

    async def _publish(
        self,
        client: AsyncWebClient,
        result: ActionResult,
        line: str,
        user: str,
        channel: str,
    ) -> None:
        """Show a change: the message in place and one thread line, once."""
        if result.outcome is ActionOutcome.DUPLICATE:
            return
        view = await self._refresh(client, result.view.id)
        if not result.changed:
            await self._ephemeral(client, channel, user, result.message)
            return
        if view.message_ts is not None:
            await client.chat_postMessage(
                channel=view.channel, thread_ts=view.message_ts, text=line
            )

    async def _refresh(self, client: AsyncWebClient, rotation: int) -> RotationView:
        lock = self._locks.setdefault(rotation, asyncio.Lock())
        async with lock:
            service = await self._service()
            view = await service.get(rotation)
            # Another process on the same database may change the rotation while
            # this update travels; read again after it, so the last update shown
            # is never older than the last change.
            for _ in range(MAX_REFRESHES):
                if view.message_ts is None or not await self._show(client, view):
                    break
                latest = await service.get(rotation)
                if latest.version == view.version:
                    break
                view = latest
        return view

    async def _show(self, client: AsyncWebClient, view: RotationView) -> bool:
        """Rewrite the checklist message; False if Slack refused."""
        assert view.message_ts is not None
        text, blocks = render.checklist_message(view, self._settings.timezone)
        try:
            await client.chat_update(
                channel=view.channel, ts=view.message_ts, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            # The change is stored and goes in the thread; the message catches up
            # on the next click.
            log.warning(
                "checklist update failed",
                extra={"rotation": view.id, "error": exc.response.get("error")},
            )
            return False
        return True

    async def _guarded(
        self,
        body: dict[str, Any],
        client: AsyncWebClient,
        audit_action: str,
        work: Callable[[str, str], Awaitable[None]],
    ) -> None:
        """Refuse non-admins with an audit line; turn known errors into a note."""
        started = time.monotonic()
        user = body.get("user", {}).get("id", "")
        channel = body.get("channel", {}).get("id", "")
        action = _action(body)
        outcome = "ok"
        try:
            if not await self._admins.allows(user):
                outcome = "refused"
                target = _click_target(action)
                request_id = click_request_id(body, action)
                await self._deny(user, audit_action, target, request_id, channel)
                await self._ephemeral(client, channel, user, messages.NOT_ALLOWED)
            else:
                await self._adopt_message(body, action)
                await work(user, channel)
        except BotError as exc:
            outcome = "error"
            await self._ephemeral(client, channel, user, _for_user(exc))
        except Exception:
            outcome = "crash"
            log.exception("rotation click failed")
            await self._ephemeral(client, channel, user, messages.INTERNAL_ERROR)
        _log_use("click", audit_action, user, outcome, started)

    async def _adopt_message(
        self, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        """Remember the clicked message if the rotation lost track of its own.

        A bot stopped between posting a checklist and storing its ts would
        otherwise leave a rotation whose message no click can ever update.
        """
        container = body.get("container") or {}
        ts = container.get("message_ts")
        head = str(action.get("value", "")).partition(":")[0]
        if not ts or _ROTATION_ID.fullmatch(head) is None:
            return
        service = await self._service()
        try:
            view = await service.get(int(head))
        except InputError:
            return
        if view.message_ts is None:
            channel = container.get("channel_id") or view.channel
            await service.attach_message(view.id, str(channel), str(ts))
            log.info(
                "rotation message adopted from a click",
                extra={"rotation": view.id, "ts": ts},
            )

    async def _open_view(self, rotation: int, step: int) -> RotationView:
        view = await self._service_view(rotation)
        if not view.is_open:
            raise InputError(
                f"rotation #{rotation} is {view.status.value}; "
                "a closed rotation is read-only"
            )
        if not 1 <= step <= view.total:
            raise InputError(f"step must be 1 to {view.total} but got {step}")
        return view

    async def _service_view(self, rotation: int) -> RotationView:
        return await (await self._service()).get(rotation)

    async def _service(self) -> RotationService:
        store = await self._services.store()
        return RotationService(store, self._settings, admins=self._admins)

    async def _deny(
        self,
        user: str,
        action: str,
        target: str,
        request_id: str | None,
        channel: str,
    ) -> None:
        store = await self._services.store()
        await store.audit(
            at=datetime.now(UTC),
            actor=user,
            action=action,
            target=target,
            outcome="denied",
            request_id=request_id,
            trigger="slack",
            details={"channel": channel},
        )

    async def _permalink(
        self, client: AsyncWebClient, view: RotationView
    ) -> str | None:
        if view.message_ts is None:
            return None
        try:
            found = await client.chat_getPermalink(
                channel=view.channel, message_ts=view.message_ts
            )
        except SlackApiError:
            return None
        link = found.get("permalink")
        return str(link) if link else None

    async def _tell_in_rotation(
        self, client: AsyncWebClient, view: dict[str, Any], user: str, text: str
    ) -> None:
        try:
            rotation, _ = step_value(str(view.get("private_metadata", "")))
            channel = (await self._service_view(rotation)).channel
        except BotError:
            return
        await self._ephemeral(client, channel, user, text)

    async def _ephemeral(
        self, client: AsyncWebClient, channel: str, user: str, text: str
    ) -> None:
        if not channel or not user:
            return
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as exc:
            log.warning("ephemeral note failed: %s", exc.response.get("error"))


def _action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    first = actions[0]
    return first if isinstance(first, dict) else {}


def _click_target(action: dict[str, Any]) -> str:
    value = str(action.get("value", ""))
    head = value.partition(":")[0]
    return f"rotation:{head}" if _ROTATION_ID.fullmatch(head) else "rotation:?"


def _prefix_step(view: RotationView) -> int:
    for step in view.steps:
        if step.check == PREFIX_CHECK:
            return step.number
    raise InputError(f"rotation #{view.id} has no step that checks the IP logs")


def _typed_prefixes(
    values: dict[str, Any],
) -> tuple[tuple[str, str], dict[str, str]]:
    typed: dict[str, str] = {}
    errors: dict[str, str] = {}
    names = {
        render.NEW_PREFIX_BLOCK: "new token prefix",
        render.OLD_PREFIX_BLOCK: "old token prefix",
    }
    for block, name in names.items():
        raw = values.get(block, {}).get(block, {}).get("value") or ""
        try:
            typed[block] = token_prefix(str(raw), name)
        except InputError as exc:
            errors[block] = str(exc)
    new = typed.get(render.NEW_PREFIX_BLOCK, "")
    old = typed.get(render.OLD_PREFIX_BLOCK, "")
    if not errors and new == old:
        errors[render.OLD_PREFIX_BLOCK] = (
            "old token prefix must differ from the new one"
        )
    return (new, old), errors


def _subcommand(parsed: RotationCommand | InputError) -> str:
    if isinstance(parsed, InputError):
        return "invalid"
    return type(parsed).__name__.lower()


def _working(command: RotationCommand) -> str:
    if isinstance(command, Start):
        return f"Starting the {command.token} rotation…"
    if isinstance(command, Status):
        return "Looking up open rotations…"
    if isinstance(command, Close):
        return f"Closing rotation #{command.rotation_id} as {command.outcome}…"
    return f"Checking the IP logs for rotation #{command.rotation_id}…"


def _for_user(error: BotError) -> str:
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, NotAllowed):
        return messages.NOT_ALLOWED
    if isinstance(error, SourceError):
        return f"Could not reach {error.source}: {error.message}"
    return str(error)


def _log_use(kind: str, what: str, user: str, outcome: str, started: float) -> None:
    log.info(
        "rotation",
        extra={
            "kind": kind,
            "what": what,
            "user": user,
            "outcome": outcome,
            "ms": round((time.monotonic() - started) * 1000),
        },
    )
