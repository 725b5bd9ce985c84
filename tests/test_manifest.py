"""manifest.yml is a whole Slack app: every command, the scopes it uses, no more."""

from pathlib import Path
from typing import Any

import pytest
import yaml  # moto[server], a dependency of the stand-ins, brings PyYAML

from bot.slack.answers import COMMANDS
from bot.slack.rotation import COMMAND as ROTATE

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"
# The Web API methods the bot calls, and the bot scope each one needs.
SCOPES_CALLED = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "usergroups.users.list": "usergroups:read",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load(MANIFEST.read_text()))


def test_every_command_the_app_serves_is_declared_with_a_hint(
    manifest: dict[str, Any],
) -> None:
    declared = {c["command"]: c for c in manifest["features"]["slash_commands"]}

    served = {f"/{command.name}" for command in COMMANDS} | {ROTATE}
    assert set(declared) == served == {
        "/usage", "/coverage", "/ipcheck", "/rotate-checklist"
    }  # fmt: skip
    for command in declared.values():
        assert command["usage_hint"].startswith("[")
        assert command["description"]
        assert command["url"].endswith("/slack/events")


def test_bot_scopes_are_those_the_calls_need(manifest: dict[str, Any]) -> None:
    """chat:write.public: answers reach a public channel the bot has not joined."""
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])

    needed = set(SCOPES_CALLED.values()) | {"commands", "chat:write.public"}
    assert scopes == needed


def test_buttons_and_socket_mode_are_set(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]

    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert settings["socket_mode_enabled"] is True
    assert manifest["features"]["bot_user"]["display_name"] == "usage-bot"
