"""The requests Slack sends to the bot's HTTP endpoint, built and signed as Slack does.

The rotation demo and the tests reach the real Bolt app through these, so a slash
command, a button click and the prefix dialog have one shape wherever they are sent.
"""

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.render.rotation_blocks import NEW_PREFIX_BLOCK, OLD_PREFIX_BLOCK, PREFIX_VIEW

TEAM_ID = "T0STANDIN"


def signature(body: bytes, timestamp: int, secret: str) -> str:
    """Slack's v0 signature of `body`: `v0=` and HMAC-SHA256 of `v0:{ts}:{body}`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    """The headers Slack sends with a form `body` it sends now."""
    stamp = int(time.time())
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": signature(body, stamp, secret),
    }


async def post_signed(
    http: httpx.AsyncClient, url: str, form: Mapping[str, str], secret: str
) -> httpx.Response:
    """POST `form` to `url`, form-encoded and signed with `secret`."""
    body = urlencode(form).encode()
    return await http.post(url, content=body, headers=signed_headers(body, secret))


def slash_command(
    command: str,
    text: str,
    *,
    user: str,
    channel: str,
    response_url: str,
    trigger_id: str,
) -> dict[str, str]:
    """The form Slack posts when `user` types `/command text` in `channel`."""
    return {
        "command": f"/{command}",
        "text": text,
        "user_id": user,
        "user_name": user.lower(),
        "channel_id": channel,
        "team_id": TEAM_ID,
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def click(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    trigger_id: str,
    message_ts: str | None = None,
    action_ts: str | None = None,
) -> dict[str, Any]:
    """The block_actions payload of `user` clicking button `action_id` once.

    `message_ts` is the message clicked in; without it the container names none.
    `action_ts` is the click's own time, which the bot's request id is made of;
    it is now, to the microsecond, unless given.
    """
    container = {"type": "message", "channel_id": channel}
    if message_ts is not None:
        container["message_ts"] = message_ts
    button = {
        "action_id": action_id,
        "block_id": "b",
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}" if action_ts is None else action_ts,
    }
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": TEAM_ID},
        "channel": {"id": channel},
        "container": container,
        "trigger_id": trigger_id,
        "actions": [button],
    }


def prefix_submission(
    view: Mapping[str, Any], new_prefix: str, old_prefix: str, *, user: str
) -> dict[str, Any]:
    """The view_submission of `user` typing both prefixes into the rotation's dialog.

    `view` is the dialog as it was opened; at least its `id` and `private_metadata`.
    """
    typed = {NEW_PREFIX_BLOCK: new_prefix, OLD_PREFIX_BLOCK: old_prefix}
    state = {
        block: {block: {"type": "plain_text_input", "value": value}}
        for block, value in typed.items()
    }
    return {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": TEAM_ID},
        "view": {**view, "callback_id": PREFIX_VIEW, "state": {"values": state}},
    }


def payload_form(payload: Mapping[str, Any]) -> dict[str, str]:
    """The form an interaction arrives in: its JSON under the `payload` field."""
    return {"payload": json.dumps(payload)}
