"""Every sentence a person reads in Slack or a terminal, in one place."""

from bot.errors import BotError, InputError, NotAllowed, SourceError
from bot.windows import ACCEPTED_FORMS

USAGE_HINTS = {
    "usage": "/usage [MODEL|all] [WINDOW]   e.g. /usage opus 1h, /usage all 48h",
    "coverage": "/coverage [MODEL|all|logs] [WINDOW]   e.g. /coverage opus 1h",
    "ipcheck": "/ipcheck [IP] [WINDOW]   e.g. /ipcheck 1h, /ipcheck 203.0.113.9 6h",
    "rotate-checklist": "/rotate-checklist [TOKEN_NAME] | status | "
    "close ID done|abandoned | verify ID NEW_PREFIX OLD_PREFIX",
}

WINDOW_HINT = f"Windows are {ACCEPTED_FORMS}."
NOT_ALLOWED = "Only the bot's admins (BOT_ADMINS) can do this; the attempt was logged."
INTERNAL_ERROR = "Something went wrong on the bot's side; the details are in its log."


def working(command: str, text: str) -> str:
    asked = f"/{command} {text}".strip()
    return f"Working on `{asked}`…"


def bad_input(command: str, error: InputError) -> str:
    """One line on what was wrong, then how to ask."""
    return f"{error}\nUsage: `{USAGE_HINTS[command]}`"


def for_user(command: str, error: BotError) -> str:
    """What a Slack user reads when a command ends in a known error."""
    if isinstance(error, InputError):
        return bad_input(command, error)
    if isinstance(error, NotAllowed):
        return NOT_ALLOWED
    if isinstance(error, SourceError):
        return f"Could not reach {error.source}: {error.message}"
    return str(error)


def coverage_not_judged(sources: list[str]) -> str:
    """A coverage answer with one side missing: nothing can be said either way."""
    return (
        "Coverage not judged: no answer from " + ", ".join(sources) + ". "
        "What the other source gave is below."
    )


def partial(sources: list[str]) -> str:
    return "Partial answer: no data from " + ", ".join(sources) + "."


def audit_failed(command: str, error: Exception) -> str:
    """A terminal security command refused because its audit line could not be kept."""
    detail = str(error).splitlines()[0][:160]
    return (
        f"{command} not run: its use could not be written to the audit log "
        f"(DATABASE_URL): {detail}"
    )


def chart_not_posted(reason: str) -> str:
    """The answer went out but its chart did not (the bot is not in the channel)."""
    return (
        f"The chart could not be posted ({reason}); invite the bot to the channel"
        " to get charts, or use `usage-bot … --plot` in a terminal."
    )


def no_chart(command: str) -> str:
    """`--plot` was given but this answer has no chart to write."""
    if command == "usage":
        return "no chart written: /usage draws one for a single model, or with --hourly"
    return f"no chart written: this /{command} answer has none"
