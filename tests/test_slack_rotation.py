"""`/rotate-checklist` end to end: signed HTTP to the Bolt app, answers in Slack."""

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.config import Settings
from bot.messages import NOT_ALLOWED
from bot.rotation.service import RotationService
from bot.slack.rotation import USAGE
from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.github import GitHubStandIn
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.ssh import FakeFile, SshStandin, write_journal
from bot.standins.tinybird import TinybirdStandIn
from bot.store import Store
from tests.fixtures_rotation import (
    ADMIN,
    ENV_FILE,
    GITHUB_TOKEN,
    INTRUDER,
    NEW,
    OLD,
    OTHER,
    REPOSITORY,
    SECRET,
    START,
    UNIT,
    Chat,
    Finished,
    World,
    at,
    coverage_at_baseline,
)
from tests.slackbot import BOT_TOKEN, CHANNEL, SIGNING_SECRET


@pytest.fixture
def frozen() -> Iterator[Any]:
    """The clock, stopped at START; tests move it."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def finished() -> Iterator[Finished]:
    handler = Finished()
    logger = logging.getLogger("bot.slack.rotation")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def rotation_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file unless a test asks for a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return str(request.getfixturevalue("fresh_postgres_url"))
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
async def world(
    tmp_path: Path,
    frozen: Any,
    finished: Finished,
    rotation_database: str,
    cloudwatch: CloudWatchStandin,
    tinybird: TinybirdStandIn,
) -> AsyncIterator[World]:
    """Every stand-in running, the .env freshly edited, coverage at baseline."""
    journal = write_journal(tmp_path / "journal.log", [])
    files = {ENV_FILE: FakeFile(mtime=int(at(10).timestamp()), mode=0o600)}
    coverage_at_baseline(cloudwatch, tinybird)
    with (
        SlackApiStandIn(token=BOT_TOKEN) as slack,
        GitHubStandIn(GITHUB_TOKEN, REPOSITORY) as github,
    ):
        github.set_secret(SECRET, at(5))
        async with SshStandin(tmp_path / "ssh", {UNIT: journal}, files) as host:
            yield World(
                slack=slack,
                github=github,
                host=host,
                tinybird=tinybird,
                clock=frozen,
                finished=finished,
                database_url=rotation_database,
                journal=journal,
            )


DONE, SKIP, UNDO = "rotation_step_done", "rotation_step_skip", "rotation_step_undo"
VERIFY = "rotation_step_verify"
CLOSE_DONE, ABANDON = "rotation_close_done", "rotation_close_abandon"
STARTED = "Started by <@UADMIN> on Thu 03 Dec 21:30 UTC · rotation #1"
STEP_8_PASS = (
    "2026-12-03T21:50:00Z to 2026-12-03T22:00:00Z: Nw3x 3; only the new prefix; "
    "coverage 1h: claude-large 100.0% ok, claude 100.0% ok"
)


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Each block's text, as a person reads it."""
    found = []
    for block in blocks:
        if block["type"] in ("header", "section"):
            found.append(block["text"]["text"])
        elif block["type"] == "context":
            found.append(block["elements"][0]["text"])
        else:
            found.append(" ".join(e["action_id"] for e in block["elements"]))
    return found


def buttons(blocks: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """(action_id, value) of every button, by block id."""
    return {
        block["block_id"]: [(e["action_id"], e["value"]) for e in block["elements"]]
        for block in blocks
        if block["type"] == "actions"
    }


def click_id(minute: int, number: int, user: str, action: str, value: str) -> str:
    """The request id of the `number`th message a test sent, a click at `minute`."""
    return f"{int(at(minute).timestamp())}.{number}:{user}:{action}:{value}"


def moved(step: int, before: str, after: str) -> dict[str, Any]:
    return {"step": step, "from": before, "to": after}


async def clicked(
    world: World, chat: Chat, minute: int, action: str, value: str, user: str = ADMIN
) -> None:
    """At `minute`, click a button and wait until the bot has finished with it."""
    world.move_to(minute)
    before = len(world.finished.outcomes)
    await chat.click(action, value, user)
    await world.finished.wait(before + 1)


async def started(world: World, chat: Chat) -> None:
    """Start the default rotation and wait until its checklist is posted."""
    await chat.command("")
    await world.slack.wait_for_async("chat.postMessage")
    await world.finished.wait(1)


async def test_start_posts_one_checklist_with_a_button_row_per_step(
    world: World,
) -> None:
    """The ack is ephemeral; the channel gets one message of 20 blocks."""
    async with world.bot() as chat:
        response = await chat.command("")
        (post,) = await world.slack.wait_for_async("chat.postMessage")
        await world.finished.wait(1)
        store = await chat.store()
        (entry,) = await store.audit_entries()

    blocks = post.params["blocks"]
    assert response.json() == {
        "response_type": "ephemeral",
        "text": "Starting the PLN_ENTER_TOKEN rotation…",
    }
    assert (post.params["channel"], post.params["text"]) == (
        CHANNEL,
        "Rotate PLN_ENTER_TOKEN: 0 of 8 done",
    )
    assert len(blocks) == 20
    assert texts(blocks)[:4] == [
        "Rotate PLN_ENTER_TOKEN (#1)",
        STARTED,
        "*Progress:* 0 of 8 done",
        ":white_large_square: *1. Generate the new token locally*\n"
        "`openssl rand -base64 32 | tr -d '/+=' | cut -c1-43`. "
        "Never paste it into Slack.",
    ]
    rows = buttons(blocks)
    assert rows["rotation-1-step-1"] == [(DONE, "1:1"), (SKIP, "1:1")]
    assert rows["rotation-1-step-3"] == [(DONE, "1:3"), (SKIP, "1:3"), (VERIFY, "1:3")]
    assert rows["rotation-1-step-5"][-1] == (VERIFY, "1:5")
    assert rows["rotation-1-step-8"][-1] == (VERIFY, "1:8")
    assert rows["rotation-1-close"] == [(CLOSE_DONE, "1"), (ABANDON, "1")]
    assert (entry.actor, entry.action, entry.target, entry.outcome) == (
        ADMIN,
        "rotation.start",
        "rotation:1",
        "applied",
    )
    assert entry.request_id == "trigger-1"


@pytest.mark.parametrize(
    "rotation_database", ["sqlite", "postgresql"], indirect=True, ids=str
)
async def test_a_rotation_carried_to_the_end_by_two_people_across_a_restart(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Every step moved, checked or skipped; the bot restarts after step 3."""
    caplog.set_level(logging.INFO)
    world.write_journal([(1, OLD), (3, OLD), (22, NEW), (23, NEW), (24, NEW)])
    async with world.bot() as chat:
        await started(world, chat)
        await clicked(world, chat, 2, DONE, "1:1")
        await clicked(world, chat, 4, DONE, "1:2", OTHER)
        await clicked(world, chat, 6, VERIFY, "1:3")

    async with world.bot() as chat:
        await clicked(world, chat, 10, SKIP, "1:4", OTHER)
        await clicked(world, chat, 12, VERIFY, "1:5")
        await clicked(world, chat, 14, DONE, "1:6")
        await clicked(world, chat, 15, UNDO, "1:6")
        await clicked(world, chat, 16, DONE, "1:6", OTHER)
        await clicked(world, chat, 20, DONE, "1:7", OTHER)
        await clicked(world, chat, 30, VERIFY, "1:8")
        await chat.submit_prefixes(NEW, OLD)
        await world.finished.wait(12)
        await clicked(world, chat, 31, CLOSE_DONE, "1")
        await clicked(world, chat, 32, DONE, "1:1", OTHER)
        store = await chat.store()
        audit = await store.audit_entries()
        rows = await all_rows(store)

    assert world.thread_lines() == [
        "<@UADMIN> marked step 1 done",
        "<@UOTHER> marked step 2 done",
        "<@UADMIN> verified step 3: passed. updated_at 2026-12-03T21:35:00Z, "
        "after start 21:30Z",
        "<@UOTHER> skipped step 4",
        f"<@UADMIN> verified step 5: passed. {ENV_FILE} modified "
        "2026-12-03T21:40:00Z, after start 21:30Z; mode 600",
        "<@UADMIN> marked step 6 done",
        "<@UADMIN> moved step 6 back to pending",
        "<@UOTHER> marked step 6 done",
        "<@UOTHER> marked step 7 done",
        f"<@UADMIN> verified step 8: passed. {STEP_8_PASS}",
        "<@UADMIN> closed this rotation as done",
    ]
    assert world.ephemerals() == [
        (OTHER, "rotation #1 is done; a closed rotation is read-only"),
    ]
    (dialog,) = world.slack.calls_to("views.open")
    assert dialog.params["trigger_id"] == "trigger-11"
    assert dialog.params["view"]["private_metadata"] == "1:8"
    assert len(world.checklists()) == 1
    assert len(world.slack.calls_to("chat.update")) == 11
    final = world.last_blocks()
    assert texts(final) == [
        "Rotate PLN_ENTER_TOKEN (#1)",
        STARTED,
        "*Progress:* 8 of 8 done (1 skipped) · *done*",
        ":white_check_mark: *1. Generate the new token locally*\n"
        "`openssl rand -base64 32 | tr -d '/+=' | cut -c1-43`. "
        "Never paste it into Slack.\n_done · <@UADMIN> · Thu 03 Dec 21:32 UTC_",
        ":white_check_mark: *2. Update the SOPS files*\n"
        "`enter.pollinations.ai/secrets/*.vars.json`.\n"
        "_done · <@UOTHER> · Thu 03 Dec 21:34 UTC_",
        ":white_check_mark: *3. Update the GitHub Actions secret*\n"
        "`PLN_ENTER_TOKEN`.\n_done · <@UADMIN> · Thu 03 Dec 21:36 UTC_\n"
        "> updated_at 2026-12-03T21:35:00Z, after start 21:30Z",
        ":fast_forward: *4. Update the Cloudflare Worker secret*\n"
        "`wrangler secret put PLN_ENTER_TOKEN`.\n"
        "_skipped · <@UOTHER> · Thu 03 Dec 21:40 UTC_",
        ":white_check_mark: *5. Update the EC2 service*\n"
        "On `enter-services`, edit `.env`, restart the service.\n"
        "_done · <@UADMIN> · Thu 03 Dec 21:42 UTC_\n"
        f"> {ENV_FILE} modified 2026-12-03T21:40:00Z, after start 21:30Z; "
        "mode 600",
        ":white_check_mark: *6. Update Modal*\n"
        "Redeploy `flux-klein` and `flux-klein-9b`.\n"
        "_done · <@UOTHER> · Thu 03 Dec 21:46 UTC_",
        ":white_check_mark: *7. Update the io.net instances*\n"
        "Set the new token in the zimage and flux environments.\n"
        "_done · <@UOTHER> · Thu 03 Dec 21:50 UTC_",
        ":white_check_mark: *8. Verify*\n"
        "The IP logs show only the new token prefix, and the old token is "
        f"rejected.\n_done · <@UADMIN> · Thu 03 Dec 22:00 UTC_\n> {STEP_8_PASS}",
        ":lock: Closed as done by <@UADMIN> on Thu 03 Dec 22:01 UTC; read-only.",
    ]
    assert [
        (e.at, e.actor, e.action, e.outcome, e.request_id, e.details) for e in audit
    ] == [
        (at(0), ADMIN, "rotation.start", "applied", "trigger-1",
         {"token": "PLN_ENTER_TOKEN", "channel": CHANNEL}),
        (at(2), ADMIN, "step.done", "applied", click_id(2, 2, ADMIN, DONE, "1:1"),
         moved(1, "pending", "done")),
        (at(4), OTHER, "step.done", "applied", click_id(4, 3, OTHER, DONE, "1:2"),
         moved(2, "pending", "done")),
        (at(6), ADMIN, "step.check", "applied", click_id(6, 4, ADMIN, VERIFY, "1:3"),
         moved(3, "pending", "done")),
        (at(10), OTHER, "step.skip", "applied", click_id(10, 5, OTHER, SKIP, "1:4"),
         moved(4, "pending", "skipped")),
        (at(12), ADMIN, "step.check", "applied",
         click_id(12, 6, ADMIN, VERIFY, "1:5"), moved(5, "pending", "done")),
        (at(14), ADMIN, "step.done", "applied", click_id(14, 7, ADMIN, DONE, "1:6"),
         moved(6, "pending", "done")),
        (at(15), ADMIN, "step.undo", "applied", click_id(15, 8, ADMIN, UNDO, "1:6"),
         moved(6, "done", "pending")),
        (at(16), OTHER, "step.done", "applied", click_id(16, 9, OTHER, DONE, "1:6"),
         moved(6, "pending", "done")),
        (at(20), OTHER, "step.done", "applied",
         click_id(20, 10, OTHER, DONE, "1:7"), moved(7, "pending", "done")),
        (at(30), ADMIN, "step.check", "applied", "view:V12",
         moved(8, "pending", "done")),
        (at(31), ADMIN, "rotation.close", "applied",
         click_id(31, 13, ADMIN, CLOSE_DONE, "1"), {"status": "done"}),
        (at(32), OTHER, "step.done", "rejected",
         click_id(32, 14, OTHER, DONE, "1:1"), {}),
    ]  # fmt: skip
    assert_no_secret(world, rows + caplog.text)


async def all_rows(store: Any) -> str:
    """Every row of every table, as text."""

    def dump(session: Any) -> str:
        from bot.store.models import Base

        return "\n".join(
            repr(row)
            for table in Base.metadata.sorted_tables
            for row in session.execute(table.select())
        )

    return str(await store.run(dump))


def assert_no_secret(world: World, rows: str) -> None:
    """No configured secret in anything the bot sent to Slack, stored or logged."""
    secrets = [GITHUB_TOKEN, world.tinybird.token, SIGNING_SECRET, BOT_TOKEN]
    sent = json.dumps([call.params for call in world.slack.calls], default=str)
    for secret in secrets:
        assert secret not in sent
        assert secret not in rows


@pytest.mark.parametrize(
    "rotation_database", ["sqlite", "postgresql"], indirect=True, ids=str
)
@pytest.mark.parametrize("at_once", [False, True], ids=["one-after-another", "at-once"])
async def test_the_same_click_delivered_twice_changes_the_step_once(
    world: World, at_once: bool
) -> None:
    """Slack's redelivery of one click is one change and one thread line."""
    async with world.bot() as chat:
        await started(world, chat)
        payload = chat.click_payload(DONE, "1:1")
        if at_once:
            await asyncio.gather(chat.deliver(payload), chat.deliver(payload))
        else:
            await chat.deliver(payload)
            await world.finished.wait(2)
            await chat.deliver(payload)
        await world.finished.wait(3)
        store = await chat.store()
        audit = await store.audit_entries()

    assert world.thread_lines() == ["<@UADMIN> marked step 1 done"]
    assert len(world.slack.calls_to("chat.update")) == 1
    assert world.ephemerals() == []
    assert [(e.action, e.outcome) for e in audit] == [
        ("rotation.start", "applied"),
        ("step.done", "applied"),
    ]


@pytest.mark.parametrize(
    "rotation_database", ["sqlite", "postgresql"], indirect=True, ids=str
)
async def test_two_people_clicking_the_same_step_at_once_leave_one_result(
    world: World,
) -> None:
    """One click moves the step; the other person is told who was first."""
    async with world.bot() as chat:
        await started(world, chat)
        world.move_to(3)
        first = chat.click_payload(DONE, "1:2", ADMIN)
        second = chat.click_payload(DONE, "1:2", OTHER)
        await asyncio.gather(chat.deliver(first), chat.deliver(second))
        await world.finished.wait(3)
        store = await chat.store()
        audit = await store.audit_entries()

    (applied,) = [
        e for e in audit if e.outcome == "applied" and e.action != "rotation.start"
    ]
    (unchanged,) = [e for e in audit if e.outcome == "unchanged"]
    winner, loser = applied.actor, unchanged.actor
    assert {winner, loser} == {ADMIN, OTHER}
    assert world.thread_lines() == [f"<@{winner}> marked step 2 done"]
    assert world.ephemerals() == [(loser, f"step 2 is already done (by {winner})")]
    assert texts(world.last_blocks())[5] == (
        ":white_check_mark: *2. Update the SOPS files*\n"
        "`enter.pollinations.ai/secrets/*.vars.json`.\n"
        f"_done · <@{winner}> · Thu 03 Dec 21:33 UTC_"
    )


async def test_a_stranger_is_refused_audited_and_changes_nothing(
    world: World,
) -> None:
    """Starting, moving, checking and closing are each refused and logged."""
    async with world.bot() as chat:
        await started(world, chat)
        world.move_to(1)
        response = await chat.command("", user=INTRUDER)
        await world.finished.wait(2)
        # One after another, so that the audit log's order is the clicks' order.
        await clicked(world, chat, 1, DONE, "1:1", INTRUDER)
        await clicked(world, chat, 1, VERIFY, "1:3", INTRUDER)
        await clicked(world, chat, 1, ABANDON, "1", INTRUDER)
        await clicked(world, chat, 1, DONE, "not-a-value", INTRUDER)
        dialog = await chat.submit_prefixes(NEW, OLD, user=INTRUDER)
        await world.finished.wait(7)
        store = await chat.store()
        audit = await store.audit_entries()
        view = await RotationService(store, chat.services.settings).get(1)

    assert response.json() == {"response_type": "ephemeral", "text": NOT_ALLOWED}
    assert world.ephemerals() == [(INTRUDER, NOT_ALLOWED)] * 4
    assert [(e.actor, e.action, e.target, e.outcome, e.request_id) for e in audit] == [
        (ADMIN, "rotation.start", "rotation:1", "applied", "trigger-1"),
        (INTRUDER, "/rotate-checklist", "start", "denied", "trigger-2"),
        (INTRUDER, "step.done", "rotation:1", "denied",
         click_id(1, 3, INTRUDER, DONE, "1:1")),
        (INTRUDER, "step.check", "rotation:1", "denied",
         click_id(1, 4, INTRUDER, VERIFY, "1:3")),
        (INTRUDER, "rotation.close", "rotation:1", "denied",
         click_id(1, 5, INTRUDER, ABANDON, "1")),
        (INTRUDER, "step.done", "rotation:?", "denied",
         click_id(1, 6, INTRUDER, DONE, "not-a-value")),
        (INTRUDER, "step.check", "prefix-dialog", "denied", "view:V7"),
    ]  # fmt: skip
    assert dialog.json() == {
        "response_action": "errors",
        "errors": {"new_prefix": NOT_ALLOWED},
    }
    assert world.slack.calls_to("chat.update") == []
    assert world.thread_lines() == []
    assert (world.github.requests, world.host.commands) == ([], [])
    assert (view.finished, view.is_open) == (0, True)


async def test_members_of_the_admin_usergroup_may_act(world: World) -> None:
    """ADMIN_USERGROUP's members start and tick; anyone else is still refused."""
    world.slack.usergroups["SONCALL01"] = [OTHER]
    async with world.bot(bot_admins=[], admin_usergroup="SONCALL01") as chat:
        await chat.command("", user=OTHER)
        await world.slack.wait_for_async("chat.postMessage")
        await world.finished.wait(1)
        await clicked(world, chat, 2, DONE, "1:1", OTHER)
        await clicked(world, chat, 3, DONE, "1:2", ADMIN)
        store = await chat.store()
        audit = await store.audit_entries()

    assert world.thread_lines() == ["<@UOTHER> marked step 1 done"]
    assert world.ephemerals() == [(ADMIN, NOT_ALLOWED)]
    assert [(e.actor, e.action, e.outcome) for e in audit] == [
        (OTHER, "rotation.start", "applied"),
        (OTHER, "step.done", "applied"),
        (ADMIN, "step.done", "denied"),
    ]
    (asked,) = world.slack.calls_to("usergroups.users.list")
    assert asked.params["usergroup"] == "SONCALL01"


@pytest.mark.parametrize(
    ("changes", "updated_at", "line", "mark"),
    [
        (
            {},
            at(-24 * 60),
            "<@UADMIN> verified step 3: failed. updated_at 2026-12-02T21:30:00Z, "
            "before start 2026-12-03T21:30Z",
            ":x:",
        ),
        (
            {"github_token": None},
            at(5),
            "<@UADMIN> verified step 3: no verdict. cannot check: GITHUB_TOKEN is "
            "not set",
            ":white_large_square:",
        ),
    ],
    ids=["secret-older-than-start", "no-github-token"],
)
async def test_github_check_fails_or_says_it_cannot_check(
    world: World,
    changes: dict[str, Any],
    updated_at: datetime,
    line: str,
    mark: str,
) -> None:
    """A stale secret fails step 3; without GITHUB_TOKEN it stays pending."""
    world.github.set_secret(SECRET, updated_at)
    async with world.bot(**changes) as chat:
        await started(world, chat)
        world.move_to(5)
        await chat.click(VERIFY, "1:3")
        await world.finished.wait(2)

    evidence = line.split(": ", 1)[1].split(". ", 1)[1]
    blocks = world.last_blocks()
    assert world.thread_lines() == [line]
    assert texts(blocks)[7].startswith(f"{mark} *3. Update the GitHub Actions secret*")
    assert texts(blocks)[7].endswith(f"\n> {evidence}")
    assert world.github.requests == (
        [] if changes else [f"/repos/{REPOSITORY}/actions/secrets/{SECRET}"]
    )


@pytest.mark.parametrize(
    ("file", "changes", "line"),
    [
        (
            FakeFile(mtime=int(at(10).timestamp()), mode=0o644),
            {},
            f"<@UADMIN> verified step 5: failed. {ENV_FILE} modified "
            "2026-12-03T21:40:00Z, after start 21:30Z; mode 644, expected 600",
        ),
        (
            FakeFile(mtime=int(at(-90).timestamp()), mode=0o600),
            {},
            f"<@UADMIN> verified step 5: failed. {ENV_FILE} modified "
            "2026-12-03T20:00:00Z, before start 21:30Z; mode 600",
        ),
        (
            FakeFile(mtime=int(at(10).timestamp()), mode=0o600),
            {"journal_hosts": []},
            "<@UADMIN> verified step 5: no verdict. cannot check: no SSH host or "
            "env file path is configured",
        ),
    ],
    ids=["mode-644", "not-edited-since-start", "no-ssh-host"],
)
async def test_env_file_check_reads_the_host_over_ssh(
    world: World, file: FakeFile, changes: dict[str, Any], line: str
) -> None:
    """Step 5 fails on a readable or stale .env, and never passes without SSH."""
    world.host.files[ENV_FILE] = file
    async with world.bot(**changes) as chat:
        await started(world, chat)
        world.move_to(15)
        await chat.click(VERIFY, "1:5")
        await world.finished.wait(2)

    assert world.thread_lines() == [line]
    expected = [] if changes else [f"stat -c '%Y %a' {ENV_FILE}"]
    assert world.host.commands == expected


@pytest.mark.parametrize(
    ("journal", "changes", "line"),
    [
        (
            [(1, OLD), (40, NEW), (41, OLD)],
            {},
            "<@UADMIN> verified step 8: failed. 2026-12-03T21:30:00Z to "
            "2026-12-03T22:30:00Z: Nw3x 1, pk7Q 2; old prefix pk7Q still used 2 "
            "times; coverage 1h: claude-large 100.0% ok, claude 100.0% ok",
        ),
        (
            [(40, NEW)],
            {"tb_token": None},
            "<@UADMIN> verified step 8: no verdict. 2026-12-03T21:30:00Z to "
            "2026-12-03T22:30:00Z: Nw3x 1; only the new prefix; cannot check: "
            "tinybird: TB_TOKEN is not set",
        ),
    ],
    ids=["old-prefix-still-used", "no-event-store"],
)
async def test_prefix_dialog_checks_the_ip_logs_and_coverage(
    world: World,
    journal: list[tuple[float, str]],
    changes: dict[str, Any],
    line: str,
) -> None:
    """The dialog's prefixes are checked against the journal since the last step."""
    world.write_journal(journal)
    async with world.bot(**changes) as chat:
        await started(world, chat)
        world.move_to(60)
        response = await chat.submit_prefixes(NEW, OLD)
        await world.finished.wait(2)
        store = await chat.store()
        view = await RotationService(store, chat.services.settings).get(1)

    assert response.status_code == 200
    assert world.thread_lines() == [line]
    assert view.step(8).state.value == ("failed" if not changes else "pending")
    assert world.host.commands == [
        "journalctl -u text-pollinations.service --since @1796333400 --until "
        "@1796337000 --grep IP-LOG -o short-iso --no-pager"
    ]


async def test_without_the_dialog_the_verify_command_checks_step_8(
    world: World,
) -> None:
    """Slack refusing views.open leads to `/rotate-checklist verify`, which works."""
    world.write_journal([(40, NEW), (41, NEW)])
    world.slack.fail_next("views.open", "expired_trigger_id")
    async with world.bot() as chat:
        await started(world, chat)
        await clicked(world, chat, 60, VERIFY, "1:8")
        await chat.command(f"verify 1 {NEW} {OLD}")
        await world.finished.wait(3)

    assert world.ephemerals() == [
        (
            ADMIN,
            "Slack could not open the prefix dialog (expired_trigger_id). Type "
            "`/rotate-checklist verify 1 NEW OLD` with the first 4 characters of "
            "the new and the old token instead; never the whole token.",
        )
    ]
    assert world.thread_lines() == [
        "<@UADMIN> verified step 8: passed. 2026-12-03T21:30:00Z to "
        "2026-12-03T22:30:00Z: Nw3x 2; only the new prefix; coverage 1h: "
        "claude-large 100.0% ok, claude 100.0% ok"
    ]


PASTED_TOKEN = "Zq9dS3kLmN0pQrStUvWxYz0123456789abcdefghijk"


@pytest.mark.parametrize(
    ("new", "old", "errors"),
    [
        (
            PASTED_TOKEN,
            OLD,
            {
                "new_prefix": "new token prefix must be exactly 4 characters of "
                "A-Z, a-z, 0-9, _ or - but got 43 characters"
            },
        ),
        (NEW, NEW, {"old_prefix": "old token prefix must differ from the new one"}),
    ],
    ids=["whole-token-pasted", "same-prefix-twice"],
)
async def test_prefix_dialog_refuses_what_is_not_two_prefixes(
    world: World, new: str, old: str, errors: dict[str, str]
) -> None:
    """The dialog shows the error beside the field and never repeats the text."""
    async with world.bot() as chat:
        await started(world, chat)
        response = await chat.submit_prefixes(new, old)
        await world.finished.wait(2)
        rows = await all_rows(await chat.store())

    assert response.json() == {"response_action": "errors", "errors": errors}
    assert world.thread_lines() == []
    assert world.host.commands == []
    sent = json.dumps([call.params for call in world.slack.calls])
    assert PASTED_TOKEN not in sent
    assert PASTED_TOKEN not in rows


async def test_status_links_open_rotations_and_close_makes_them_read_only(
    world: World,
) -> None:
    """Status, close by command, status again, then a click on the closed one."""
    async with world.bot() as chat:
        await started(world, chat)
        await chat.command("status", user=INTRUDER)
        await world.finished.wait(2)
        world.move_to(5)
        await chat.command("close 1 abandoned")
        await world.finished.wait(3)
        await chat.command("status")
        await world.finished.wait(4)
        await chat.click(VERIFY, "1:3", user=OTHER)
        await world.finished.wait(5)

    # The stand-in numbers its messages from 1700000000.000001 on.
    link = f"{world.slack.url}/archives/{CHANNEL}/p1700000000000001"
    assert world.replies() == [
        "#1 PLN_ENTER_TOKEN: 0 of 8 done, started by <@UADMIN> on Thu 03 Dec "
        f"21:30 UTC; <{link}|open the checklist>",
        "No open rotations.",
    ]
    assert world.thread_lines() == ["<@UADMIN> closed this rotation as abandoned"]
    assert world.ephemerals() == [
        (OTHER, "rotation #1 is abandoned; a closed rotation is read-only")
    ]
    assert world.github.requests == []
    final = world.last_blocks()
    assert [block["type"] for block in final].count("actions") == 0
    assert texts(final)[-1] == (
        ":lock: Closed as abandoned by <@UADMIN> on Thu 03 Dec 21:35 UTC; read-only."
    )


@pytest.mark.parametrize(
    ("text", "changes", "answer"),
    [
        ("close x done", {}, "rotation id must be a whole number but got 1 characters"),
        (
            "close 1 finished",
            {},
            "close needs a rotation id and done or abandoned, e.g. `close 3 done`",
        ),
        (
            f"verify 1 {PASTED_TOKEN} {OLD}",
            {},
            "new token prefix must be exactly 4 characters of A-Z, a-z, 0-9, _ or - "
            "but got 43 characters",
        ),
        (
            "OTHER_TOKEN",
            {},
            "token must be one with a runbook (PLN_ENTER_TOKEN) but got another name",
        ),
        (
            "LONG",
            {"runbooks": {"LONG": [{"title": f"s{n}"} for n in range(24)]}},
            "runbook for LONG has 24 steps but one Slack message holds at most 23",
        ),
    ],
    ids=["bad-id", "bad-outcome", "whole-token", "unknown-token", "runbook-too-long"],
)
async def test_bad_input_is_answered_at_once_without_echo(
    world: World, text: str, changes: dict[str, Any], answer: str
) -> None:
    """The ack names what was wrong and how to ask; nothing is started."""
    async with world.bot(**changes) as chat:
        response = await chat.command(text)
        await world.finished.wait(1)

    assert response.json() == {
        "response_type": "ephemeral",
        "text": f"{answer}\nUsage: `{USAGE}`",
    }
    assert [call.method for call in world.slack.calls] == ["auth.test"]


async def test_the_longest_runbook_that_fits_fills_exactly_50_blocks(
    world: World,
) -> None:
    """23 steps with buttons, plus header, started-by, progress and close row."""
    steps = [{"title": f"step {n}", "check": "github_secret"} for n in range(23)]
    async with world.bot(runbooks={"LONG": steps}) as chat:
        await chat.command("long")
        (post,) = await world.slack.wait_for_async("chat.postMessage")
        await world.finished.wait(1)

    assert len(post.params["blocks"]) == 50
    assert post.params["text"] == "Rotate LONG: 0 of 23 done"


async def test_the_alert_button_starts_the_rotation_for_admins_only(
    world: World,
) -> None:
    """The watcher's `rotation_start` button: refused and audited, then started."""
    async with world.bot() as chat:
        await chat.click("rotation_start", "claude-large", user=INTRUDER)
        await world.finished.wait(1)
        await chat.click("rotation_start", "claude-large")
        (post,) = await world.slack.wait_for_async("chat.postMessage")
        await world.finished.wait(2)
        store = await chat.store()
        entries = await store.audit_entries()

    assert world.ephemerals() == [(INTRUDER, messages.NOT_ALLOWED)]
    assert post.params["text"] == "Rotate PLN_ENTER_TOKEN: 0 of 8 done"
    assert [(e.actor, e.action, e.outcome) for e in entries] == [
        (INTRUDER, "rotation.start", "denied"),
        (ADMIN, "rotation.start", "applied"),
    ]


class RacingSlack(SlackApiStandIn):
    """Slack whose next chat.update first lets another bot process change things."""

    before_update: Callable[[], None] | None = None

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        hook, self.before_update = self.before_update, None
        if hook is not None:
            hook()
        return super()._update(params)


async def _other_process_ticks(database_url: str, step: int) -> None:
    store = await Store.open(database_url)
    try:
        service = RotationService(store, Settings(bot_admins=[OTHER]))
        await service.act(1, step, "done", OTHER, "elsewhere")
    finally:
        await store.close()


async def test_a_change_made_elsewhere_during_an_update_is_shown_too(
    world: World,
) -> None:
    """The message is read again after each update; it never ends on an old view."""
    with RacingSlack(token=BOT_TOKEN) as slack:
        world = dataclasses.replace(world, slack=slack)
        async with world.bot() as chat:
            await started(world, chat)
            slack.before_update = lambda: asyncio.run(
                _other_process_ticks(world.database_url, 2)
            )
            await clicked(world, chat, 2, DONE, "1:1")

        updates = [
            texts(call.params["blocks"])[2] for call in slack.calls_to("chat.update")
        ]
        final = texts(world.last_blocks())

    assert updates == ["*Progress:* 1 of 8 done", "*Progress:* 2 of 8 done"]
    assert final[3].endswith("_done · <@UADMIN> · Thu 03 Dec 21:32 UTC_")
    assert final[5].endswith("_done · <@UOTHER> · Thu 03 Dec 21:32 UTC_")
    assert world.thread_lines() == ["<@UADMIN> marked step 1 done"]


async def test_a_refused_update_still_leaves_the_thread_line(world: World) -> None:
    """Slack refusing chat.update is logged; the change stands and is told."""
    async with world.bot() as chat:
        await started(world, chat)
        world.slack.fail_next("chat.update", "message_not_found")
        await clicked(world, chat, 2, DONE, "1:1")

    assert world.thread_lines() == ["<@UADMIN> marked step 1 done"]
    assert world.ephemerals() == []
    assert world.finished.outcomes[-1] == ("step.done", ADMIN, "ok")


async def test_a_checklist_whose_ts_was_never_stored_is_adopted_from_a_click(
    world: World,
) -> None:
    """A bot stopped between posting and storing the ts: the next click heals it."""
    async with world.bot() as chat:
        store = await chat.store()
        service = RotationService(store, chat.services.settings)
        await service.start(SECRET, CHANNEL, ADMIN, "start-then-killed")
        client = AsyncWebClient(token=BOT_TOKEN, base_url=world.slack.api_url)
        posted = await client.chat_postMessage(channel=CHANNEL, text="checklist")
        payload = json.loads(chat.click_payload(DONE, "1:1"))
        payload["container"]["message_ts"] = posted["ts"]
        world.move_to(2)
        await chat.deliver(json.dumps(payload))
        await world.finished.wait(1)
        view = await service.get(1)

    (update,) = world.slack.calls_to("chat.update")
    assert (view.channel, view.message_ts) == (CHANNEL, posted["ts"])
    assert (update.params["ts"], update.params["text"]) == (
        posted["ts"],
        "Rotate PLN_ENTER_TOKEN: 1 of 8 done",
    )
    assert world.thread_lines() == ["<@UADMIN> marked step 1 done"]
