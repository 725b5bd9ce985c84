"""A token rotation as one Slack message with buttons, and the lines its thread gets."""

from typing import Any

from bot.render.blocks import MAX_BLOCKS, Block, context, header, local_time, section
from bot.rotation.checks import CheckResult, CheckStatus
from bot.rotation.service import RotationView, StepState, StepView

ACTION_DONE = "rotation_step_done"
ACTION_SKIP = "rotation_step_skip"
ACTION_UNDO = "rotation_step_undo"
ACTION_VERIFY = "rotation_step_verify"
ACTION_CLOSE_DONE = "rotation_close_done"
ACTION_CLOSE_ABANDON = "rotation_close_abandon"
PREFIX_VIEW = "rotation_prefix_check"
NEW_PREFIX_BLOCK = "new_prefix"
OLD_PREFIX_BLOCK = "old_prefix"

# Header, started-by line, progress line and the close row, then two blocks a step
# (its text and its buttons): a runbook longer than this would not fit one message.
FIXED_BLOCKS = 4
MAX_STEPS = (MAX_BLOCKS - FIXED_BLOCKS) // 2
MAX_EVIDENCE_CHARS = 500

_MARKS = {
    StepState.PENDING: ":white_large_square:",
    StepState.DONE: ":white_check_mark:",
    StepState.SKIPPED: ":fast_forward:",
    StepState.FAILED: ":x:",
}
_STATE_WORDS = {
    StepState.PENDING: "pending",
    StepState.DONE: "done",
    StepState.SKIPPED: "skipped",
    StepState.FAILED: "failed check",
}
_DONE_LINES = {
    "done": "marked step {step} done",
    "skip": "skipped step {step}",
    "undo": "moved step {step} back to pending",
}


def checklist_message(view: RotationView, tz: str) -> tuple[str, list[Block]]:
    """The fallback text and the blocks of the rotation's one message."""
    started = local_time(view.started_at, tz)
    blocks = [
        header(f"{view.title} (#{view.id})"),
        context(f"Started by <@{view.started_by}> on {started} · rotation #{view.id}"),
        section(progress(view)),
    ]
    for step in view.steps:
        blocks.append(section(step_text(step, tz)))
        if view.is_open:
            blocks.append(step_buttons(view.id, step))
    if view.is_open:
        blocks.append(close_buttons(view.id))
    else:
        blocks.append(context(closed_text(view, tz)))
    return f"{view.title}: {progress_words(view)}", blocks


def progress_words(view: RotationView) -> str:
    """`3 of 8 done`, with skipped and failed steps counted after it."""
    words = f"{view.finished} of {view.total} done"
    notes = []
    for state in (StepState.SKIPPED, StepState.FAILED):
        count = sum(step.state is state for step in view.steps)
        if count:
            notes.append(f"{count} {_STATE_WORDS[state]}")
    return f"{words} ({', '.join(notes)})" if notes else words


def progress(view: RotationView) -> str:
    """The progress line under the title."""
    status = "" if view.is_open else f" · *{view.status.value}*"
    return f"*Progress:* {progress_words(view)}{status}"


def step_text(step: StepView, tz: str) -> str:
    """One step: mark, number, title, detail, who moved it when, and its evidence."""
    lines = [f"{_MARKS[step.state]} *{step.number}. {escape(step.title)}*"]
    if step.detail:
        lines.append(escape(step.detail))
    if step.actor is not None and step.updated_at is not None:
        when = local_time(step.updated_at, tz)
        lines.append(f"_{_STATE_WORDS[step.state]} · <@{step.actor}> · {when}_")
    if step.evidence:
        lines.append(f"> {escape(clip(step.evidence))}")
    return "\n".join(lines)


def step_buttons(rotation_id: int, step: StepView) -> Block:
    """The buttons that fit the step's state; Verify wherever the bot can check."""
    value = f"{rotation_id}:{step.number}"
    buttons = []
    if step.state in (StepState.PENDING, StepState.FAILED):
        buttons.append(button(ACTION_DONE, "Done", value, "primary"))
        buttons.append(button(ACTION_SKIP, "Skip", value))
    if step.state is not StepState.PENDING:
        buttons.append(button(ACTION_UNDO, "Undo", value))
    if step.check is not None:
        buttons.append(button(ACTION_VERIFY, "Verify", value))
    return {
        "type": "actions",
        "block_id": f"rotation-{rotation_id}-step-{step.number}",
        "elements": buttons,
    }


def close_buttons(rotation_id: int) -> Block:
    """Close as done, or abandon after a confirmation."""
    value = str(rotation_id)
    abandon = button(ACTION_CLOSE_ABANDON, "Abandon", value, "danger")
    abandon["confirm"] = {
        "title": {"type": "plain_text", "text": "Abandon this rotation?"},
        "text": {"type": "plain_text", "text": "It becomes read-only."},
        "confirm": {"type": "plain_text", "text": "Abandon"},
        "deny": {"type": "plain_text", "text": "Keep going"},
    }
    return {
        "type": "actions",
        "block_id": f"rotation-{rotation_id}-close",
        "elements": [button(ACTION_CLOSE_DONE, "Close as done", value), abandon],
    }


def button(action_id: str, label: str, value: str, style: str | None = None) -> Block:
    """A Block Kit button."""
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if style is not None:
        element["style"] = style
    return element


def closed_text(view: RotationView, tz: str) -> str:
    """The line that replaces the close row once the rotation is closed."""
    when = local_time(view.closed_at, tz) if view.closed_at else "an unknown time"
    return (
        f":lock: Closed as {view.status.value} by <@{view.closed_by}> on {when}; "
        "read-only."
    )


def step_line(user: str, action: str, step: int) -> str:
    """The thread line for a person moving a step."""
    return f"<@{user}> " + _DONE_LINES[action].format(step=step)


def check_line(user: str, step: int, result: CheckResult) -> str:
    """The thread line for a check, with its evidence."""
    evidence = clip(result.evidence)
    verdict = (
        "no verdict"
        if result.status is CheckStatus.CANNOT_CHECK
        else result.status.value
    )
    return f"<@{user}> verified step {step}: {verdict}. {evidence}"


def close_line(user: str, outcome: str) -> str:
    """The thread line for closing the rotation."""
    return f"<@{user}> closed this rotation as {outcome}"


def status_lines(entries: list[tuple[RotationView, str | None]], tz: str) -> str:
    """`/rotate-checklist status`: each open rotation with a link to its message."""
    if not entries:
        return "No open rotations."
    lines = []
    for view, link in entries:
        started = local_time(view.started_at, tz)
        where = f"<{link}|open the checklist>" if link else "no message posted"
        lines.append(
            f"#{view.id} {view.token_name}: {progress_words(view)}, started by "
            f"<@{view.started_by}> on {started}; {where}"
        )
    return "\n".join(lines)


def prefix_modal(rotation_id: int, step: int) -> dict[str, Any]:
    """The dialog that asks for the new and old token prefixes, never the token."""
    return {
        "type": "modal",
        "callback_id": PREFIX_VIEW,
        "private_metadata": f"{rotation_id}:{step}",
        "title": {"type": "plain_text", "text": "Verify the new token"},
        "submit": {"type": "plain_text", "text": "Check the logs"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(
                "Type only the first 4 characters of each token. "
                "Never paste a whole token into Slack."
            ),
            _prefix_input(NEW_PREFIX_BLOCK, "New token prefix"),
            _prefix_input(OLD_PREFIX_BLOCK, "Old token prefix"),
        ],
    }


def _prefix_input(block_id: str, label: str) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "plain_text_input",
            "action_id": block_id,
            "min_length": 4,
            "max_length": 4,
        },
    }


def escape(text: str) -> str:
    """Text safe inside mrkdwn: no accidental mentions, links or quotes."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = MAX_EVIDENCE_CHARS) -> str:
    """`text` cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
