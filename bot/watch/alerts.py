"""The watcher's Slack messages: the alert, its thread updates, no-data, recovery."""

from dataclasses import dataclass, field
from datetime import datetime

from bot.analysis.coverage import ModelCoverage
from bot.analysis.ipcheck import IpSummary
from bot.render import numbers
from bot.render.blocks import Block, context, header, local_time, section
from bot.windows import Window

# The button another part of the bot answers by starting /rotate-checklist for
# the model named in its value.
ROTATION_ACTION = "rotation_start"
MAX_SUSPECTS = 5

Message = tuple[str, list[Block]]


@dataclass(frozen=True)
class Suspects:
    """Busiest callers outside the expected ingress, or why they are unknown."""

    ips: list[IpSummary] = field(default_factory=list)
    error: str | None = None


def latest_coverage(model: ModelCoverage) -> float | None:
    """Invocation coverage in the most recent period that had billed calls."""
    for point in reversed(model.series):
        if point.provider:
            return point.coverage
    return None


def rotation_button(model: str) -> Block:
    """The actions row whose button starts the token-rotation checklist."""
    return {
        "type": "actions",
        "block_id": f"watch-rotate-{model}"[:255],
        "elements": [
            {
                "type": "button",
                "action_id": ROTATION_ACTION,
                "text": {"type": "plain_text", "text": "Start token rotation"},
                "value": model,
                "style": "danger",
            }
        ],
    }


def alert_message(
    model: ModelCoverage,
    key: str,
    window: Window,
    reason: str,
    suspects: Suspects,
    tz: str,
) -> Message:
    """The one message that opens an episode."""
    text = f":rotating_light: Coverage alert: {key}: {reason}"
    figures = "\n".join(
        [
            f"*Coverage now* (last period): {numbers.share(latest_coverage(model))}",
            f"*Coverage over {window.label}*: "
            f"{numbers.share(model.invocation_coverage)}",
            f"*Uncovered so far*: {numbers.count(model.uncovered.invocations)} "
            f"calls, {numbers.usd(model.uncovered_cost_usd)}",
            f"*Gap began*: {_when(model.gap_began, tz)}",
        ]
    )
    blocks = [
        header(f"Coverage alert: {key}"),
        section(f"{reason}.\n{figures}"),
        section(suspects_text(suspects, tz)),
        rotation_button(key),
        context(
            f"Window {local_time(window.start, tz)} to {local_time(window.end, tz)}. "
            "Updates follow in this thread."
        ),
    ]
    return text, blocks


def suspects_text(suspects: Suspects, tz: str) -> str:
    """The callers that reached the service without the expected ingress."""
    if suspects.error is not None:
        return (
            f"*Suspects*: unknown, the service logs did not answer ({suspects.error})."
        )
    if not suspects.ips:
        return "*Suspects*: no caller outside the expected ingress in the logs."
    lines = ["*Suspects* (outside the expected ingress):"]
    for ip in suspects.ips[:MAX_SUSPECTS]:
        models = ", ".join(name for name, _ in ip.models[:3]) or "n/a"
        tokens = ", ".join(f"`{prefix}…`" for prefix, _ in ip.token_prefixes[:2])
        line = (
            f"• `{ip.ip}`: {numbers.count(ip.requests)} requests, {models}, "
            f"since {_when(ip.first_seen, tz)}"
        )
        lines.append(line + (f", token {tokens}" if tokens else ""))
    return "\n".join(lines)


def update_message(
    key: str,
    model: ModelCoverage | None,
    window: Window,
    reason: str,
    episode_cost_usd: float | None,
) -> Message:
    """A thread update while the episode lasts."""
    share = numbers.share(model.invocation_coverage) if model else "n/a"
    text = (
        f":hourglass: {key} is still alerting: {reason}. Coverage over "
        f"{window.label} {share}; uncovered cost this episode so far "
        f"{numbers.usd(episode_cost_usd)}."
    )
    return text, [section(text)]


def recovery_message(
    key: str, began: datetime | None, now: datetime, cost_usd: float | None, tz: str
) -> Message:
    """The notice that closes the episode, with what it cost in all."""
    text = (
        f":white_check_mark: {key} has recovered: coverage is back to normal. "
        f"The episode cost {numbers.usd(cost_usd)} in uncovered calls, from "
        f"{_when(began, tz)} to {local_time(now, tz)}."
    )
    return text, [section(text)]


def no_data_message(entries: list[tuple[str, str]]) -> Message:
    """Models the watcher cannot judge, and why: never a silent all-clear."""
    lines = [f"• *{key}*: {reason}" for key, reason in entries]
    text = ":grey_question: Watch has no data for " + ", ".join(k for k, _ in entries)
    return text, [section(f"{text}.\n" + "\n".join(lines))]


def data_back_message(keys: list[str]) -> Message:
    """The end of a no-data spell outside any episode: judged again, not alerting."""
    subject = "it is" if len(keys) == 1 else "they are"
    text = (
        f":white_check_mark: Watch has data again for {', '.join(keys)}: "
        f"{subject} judged again, and not alerting."
    )
    return text, [section(text)]


def _when(moment: datetime | None, tz: str) -> str:
    return local_time(moment, tz) if moment is not None else "unknown"
