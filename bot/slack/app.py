"""The Slack app: slash commands acked at once, answered in the channel."""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.access import Admins
from bot.commands.answer import Answer, Prepared
from bot.config import Settings
from bot.errors import BotError, ConfigError, InputError
from bot.services import Services
from bot.slack.answers import COMMANDS, SlashCommand

log = logging.getLogger(__name__)

SLACK_TIMEOUT_SECONDS = 10
# Errors that mean the bot cannot post in this channel; it answers through the
# command's response_url instead, which always works for the person who asked.
_NOT_POSTABLE = {"not_in_channel", "channel_not_found", "is_archived"}


def build_app(settings: Settings, services: Services) -> AsyncApp:
    """An AsyncApp whose requests are always signature-checked."""
    if settings.slack_bot_token is None or settings.slack_signing_secret is None:
        raise ConfigError("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must both be set")

    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT_SECONDS,
    )
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        request_verification_enabled=True,
    )
    admins = Admins(settings, client)
    for command in COMMANDS:
        _register(app, command, services, admins)
    for extend in extensions():
        extend(app, services)
    return app


def extensions() -> list[Callable[[AsyncApp, Services], None]]:
    """Parts of the app with their own listeners (buttons, threads)."""
    from bot.slack import rotation

    return [rotation.register]


def _register(
    app: AsyncApp, command: SlashCommand, services: Services, admins: Admins
) -> None:
    async def handle(
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await run_slash_command(command, services, ack, body, respond, client, admins)

    app.command(f"/{command.name}")(handle)


async def run_slash_command(
    command: SlashCommand,
    services: Services,
    ack: AsyncAck,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    admins: Admins | None = None,
) -> None:
    """Validate, ack within Slack's 3 seconds, then work and post the answer."""
    started = time.monotonic()
    text, user = body.get("text", "").strip(), body.get("user_id", "")
    outcome = "ok"
    try:
        # Preparing only reads the text, so it may come before the admin check;
        # what it finds decides whether the text is safe to keep in the audit log.
        prepared: Prepared | InputError
        try:
            prepared = command.prepare(text, services)
        except InputError as exc:
            prepared = exc
        if command.admins_only:
            admins = admins or Admins(services.settings, client)
            allowed = await admins.allows(user)
            valid = not isinstance(prepared, InputError)
            await audit_use(services, command.name, body, allowed, valid)
            if not allowed:
                outcome = "refused"
                await ack(response_type="ephemeral", text=messages.NOT_ALLOWED)
                return
        if isinstance(prepared, InputError):
            outcome = "bad-input"
            await ack(
                response_type="ephemeral",
                text=messages.bad_input(command.name, prepared),
            )
            return

        await ack(response_type="ephemeral", text=messages.working(command.name, text))
        try:
            answer = await prepared()
        except BotError as exc:
            outcome = "error"
            await respond(
                response_type="ephemeral", text=messages.for_user(command.name, exc)
            )
            return
        outcome = "partial" if answer.partial else "ok"
        await post_answer(client, body, answer, respond)
    except Exception:
        outcome = "crash"
        log.exception("command failed", extra={"command": command.name})
        await respond(response_type="ephemeral", text=messages.INTERNAL_ERROR)
    finally:
        log.info(
            "command",
            extra={
                "command": command.name,
                "user": user,
                "channel": body.get("channel_id"),
                "outcome": outcome,
                "ms": round((time.monotonic() - started) * 1000),
            },
        )


async def audit_use(
    services: Services,
    name: str,
    body: dict[str, Any],
    allowed: bool,
    valid: bool = True,
) -> None:
    """Security commands leave a line in the audit log, allowed or not.

    Text that is not a valid request is not kept: it may be a pasted token.
    """
    store = await services.store()
    await store.audit(
        at=datetime.now(UTC),
        actor=body.get("user_id", ""),
        action=f"/{name}",
        target=body.get("text", "").strip()[:200] if valid else "(invalid input)",
        outcome="allowed" if allowed else "denied",
        request_id=body.get("trigger_id"),
        trigger="slack",
        details={"channel": body.get("channel_id", "")},
    )


async def post_answer(
    client: AsyncWebClient,
    body: dict[str, Any],
    answer: Answer,
    respond: AsyncRespond,
) -> None:
    """Post in the channel, then the charts below it in the same channel.

    Slash commands cannot be used in threads, so the channel is where the
    question was asked; a chart in a thread would be hidden behind "1 reply".
    """
    channel = body["channel_id"]
    try:
        await client.chat_postMessage(
            channel=channel, text=answer.text, blocks=answer.blocks
        )
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error not in _NOT_POSTABLE:
            raise
        await respond(
            response_type="in_channel", text=answer.text, blocks=answer.blocks
        )
        if answer.charts:
            await respond(
                response_type="ephemeral", text=messages.chart_not_posted(str(error))
            )
        return

    for chart in answer.charts:
        try:
            await client.files_upload_v2(
                channel=channel,
                file=chart.png,
                filename=chart.filename,
                title=chart.title,
            )
        except SlackApiError as exc:
            # The answer itself is in the channel: say what is missing, not "crash".
            error = str(exc.response.get("error"))
            log.warning("chart not posted", extra={"channel": channel, "error": error})
            await respond(
                response_type="ephemeral", text=messages.chart_not_posted(error)
            )
            return
