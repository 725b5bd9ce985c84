"""The bot's one small error tree.

Every failure a person can meet is one of these. The message says what was expected
and what came; `bot.messages` turns them into the short text a Slack user reads.
"""


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class InputError(BotError):
    """What a person typed cannot be used; no backend has been called."""


class NotAllowed(BotError):
    """The person is not allowed to run this command or action."""


class ConfigError(BotError):
    """The configuration is incomplete or inconsistent."""


class SourceError(BotError):
    """A backend (CloudWatch, Tinybird, an SSH host...) failed to answer."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class SourceTimeout(SourceError):
    """A backend did not answer within its timeout."""
