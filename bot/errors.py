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


# Longer than any window, model name or IPv4 address a person types, shorter than
# the tokens and keys the bot works with (20 characters and up).
ECHO_LIMIT = 19


def echo(text: str) -> str:
    """How an error quotes what was typed: short text as it came, longer text only
    by its length, since a whole pasted token must never be repeated."""
    if len(text) <= ECHO_LIMIT:
        return repr(text)
    return f"{len(text)} characters (not repeated: it may be a secret)"
