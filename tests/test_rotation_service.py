"""The rotation checklist on SQLite and a real PostgreSQL server."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.access import is_admin
from bot.cli.main import main
from bot.config import RunbookStep, Settings, load_settings
from bot.errors import InputError, NotAllowed
from bot.rotation.runbook import runbook_for
from bot.rotation.service import (
    ActionOutcome,
    RotationService,
    RotationStatus,
    StepState,
)
from bot.store import Store

START = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)
ADMIN, OTHER_ADMIN, STRANGER = "UADMIN", "UOTHER", "USTRANGER"
TOKEN = "PLN_ENTER_TOKEN"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def settings() -> Settings:
    return Settings(bot_admins=[ADMIN, OTHER_ADMIN])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


@pytest.fixture
def service(store: Store, settings: Settings, clock: Clock) -> RotationService:
    return RotationService(store, settings, clock)


async def test_start_opens_the_default_checklist(
    service: RotationService, store: Store
) -> None:
    """Starting PLN_ENTER_TOKEN gives eight pending steps and one audit line."""
    view = await service.start(TOKEN, "C1", ADMIN, "req-start")

    entries = await store.audit_entries()
    assert (view.title, view.started_by, view.started_at) == (
        "Rotate PLN_ENTER_TOKEN",
        ADMIN,
        START,
    )
    assert (view.status, view.finished, view.total, view.version) == (
        RotationStatus.OPEN,
        0,
        8,
        1,
    )
    assert [step.check for step in view.steps] == [
        None, None, "github_secret", None, "remote_env_file", None, None,
        "ip_logs_prefix",
    ]  # fmt: skip
    assert view.step(1).title == "Generate the new token locally"
    assert {step.state for step in view.steps} == {StepState.PENDING}
    assert [(e.action, e.target, e.outcome, e.request_id) for e in entries] == [
        ("rotation.start", f"rotation:{view.id}", "applied", "req-start")
    ]


async def test_checklist_survives_a_restart(
    database_url: str, settings: Settings, clock: Clock
) -> None:
    """Half the steps before a restart, the rest after, then close as done."""
    first = await Store.open(database_url)
    view = await RotationService(first, settings, clock).start(TOKEN, "C1", ADMIN, "r0")
    for number in range(1, 5):
        clock.advance(5)
        await RotationService(first, settings, clock).act(
            view.id, number, "done", ADMIN, f"r{number}"
        )
    await first.close()

    second = await Store.open(database_url)
    service = RotationService(second, settings, clock)
    for number in range(5, 9):
        clock.advance(5)
        action = "skip" if number == 6 else "done"
        await service.act(view.id, number, action, OTHER_ADMIN, f"r{number}")
    closed = await service.close(view.id, "done", ADMIN, "r-close")
    reread = await service.get(view.id)
    still_open = await service.list_open()
    await second.close()

    assert closed.outcome is ActionOutcome.APPLIED
    assert reread == closed.view
    assert (reread.status, reread.closed_by, reread.closed_at) == (
        RotationStatus.DONE,
        ADMIN,
        START + timedelta(minutes=40),
    )
    assert (reread.finished, reread.version) == (8, 10)
    assert [(s.state, s.actor) for s in reread.steps[3:6]] == [
        (StepState.DONE, ADMIN),
        (StepState.DONE, OTHER_ADMIN),
        (StepState.SKIPPED, OTHER_ADMIN),
    ]
    assert reread.step(8).updated_at == START + timedelta(minutes=40)
    assert still_open == []


async def test_same_delivery_twice_changes_once(
    service: RotationService, store: Store
) -> None:
    """Slack delivering one click twice: one state change, one audit line."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")

    first = await service.act(view.id, 2, "done", ADMIN, "click-1")
    second = await service.act(view.id, 2, "done", ADMIN, "click-1")

    entries = await store.audit_entries(target=f"rotation:{view.id}")
    assert (first.outcome, second.outcome) == (
        ActionOutcome.APPLIED,
        ActionOutcome.DUPLICATE,
    )
    assert second.message == "request click-1 was already handled"
    assert (second.view.step(2).version, second.view.version) == (2, 2)
    assert [e.request_id for e in entries] == ["r0", "click-1"]


async def _racing_services(
    database_url: str, settings: Settings, clock: Clock
) -> tuple[list[Store], list[RotationService]]:
    stores = [await Store.open(database_url) for _ in range(2)]
    return stores, [RotationService(store, settings, clock) for store in stores]


@pytest.mark.parametrize(
    ("expected_version", "loser"),
    [(None, ActionOutcome.UNCHANGED), (1, ActionOutcome.CONFLICT)],
    ids=["no-version", "with-version"],
)
async def test_two_people_clicking_one_step_leave_one_result(
    database_url: str,
    settings: Settings,
    clock: Clock,
    expected_version: int | None,
    loser: ActionOutcome,
) -> None:
    """Two admins click the same step at once over two connections: one wins."""
    stores, services = await _racing_services(database_url, settings, clock)
    view = await services[0].start(TOKEN, "C1", ADMIN, "r0")

    results = await asyncio.gather(
        services[0].act(view.id, 3, "done", ADMIN, "a", expected_version),
        services[1].act(view.id, 3, "done", OTHER_ADMIN, "b", expected_version),
    )
    final = await services[0].get(view.id)
    entries = await stores[0].audit_entries(target=f"rotation:{view.id}")
    for store in stores:
        await store.close()

    winner = next(r for r in results if r.changed)
    assert sorted(r.outcome for r in results) == sorted([ActionOutcome.APPLIED, loser])
    assert (final.step(3).state, final.step(3).version, final.version) == (
        StepState.DONE,
        2,
        2,
    )
    assert final.step(3).actor == winner.view.step(3).actor
    assert sorted(e.outcome for e in entries[1:]) == sorted(["applied", loser.value])


async def test_concurrent_duplicate_deliveries_apply_once(
    database_url: str, settings: Settings, clock: Clock
) -> None:
    """One click delivered twice at once, to two connections: applied once."""
    stores, services = await _racing_services(database_url, settings, clock)
    view = await services[0].start(TOKEN, "C1", ADMIN, "r0")

    results = await asyncio.gather(
        services[0].act(view.id, 1, "skip", ADMIN, "same"),
        services[1].act(view.id, 1, "skip", ADMIN, "same"),
    )
    entries = await stores[0].audit_entries(target=f"rotation:{view.id}")
    for store in stores:
        await store.close()

    assert sorted(r.outcome for r in results) == [
        ActionOutcome.APPLIED,
        ActionOutcome.DUPLICATE,
    ]
    assert [(e.request_id, e.outcome) for e in entries] == [
        ("r0", "applied"),
        ("same", "applied"),
    ]


async def test_stranger_is_refused_and_audited(
    service: RotationService, store: Store
) -> None:
    """A click from someone outside BOT_ADMINS raises NotAllowed and is logged."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")

    with pytest.raises(NotAllowed) as caught:
        await service.act(view.id, 1, "done", STRANGER, "evil")

    entries = await store.audit_entries()
    assert str(caught.value) == (
        "user USTRANGER is not in BOT_ADMINS or ADMIN_USERGROUP; "
        "only bot admins may change token rotations"
    )
    assert (await service.get(view.id)).step(1).state is StepState.PENDING
    assert [(e.actor, e.action, e.target, e.outcome) for e in entries[1:]] == [
        (STRANGER, "step.done", f"rotation:{view.id}", "denied")
    ]


async def test_stranger_cannot_start(service: RotationService, store: Store) -> None:
    """Starting is for admins too, and the refusal is logged against the token."""
    with pytest.raises(NotAllowed):
        await service.start(TOKEN, "C1", STRANGER, "r0")

    entries = await store.audit_entries()
    assert [(e.target, e.outcome) for e in entries] == [(f"token:{TOKEN}", "denied")]


async def test_closed_rotation_is_read_only(
    service: RotationService, store: Store
) -> None:
    """After abandoning, clicks fail with a clear message and are logged."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")
    await service.close(view.id, "abandoned", ADMIN, "r1")

    with pytest.raises(InputError) as caught:
        await service.act(view.id, 1, "done", ADMIN, "r2")

    entries = await store.audit_entries()
    assert str(caught.value) == (
        f"rotation #{view.id} is abandoned; a closed rotation is read-only"
    )
    assert entries[-1].outcome == "rejected"


async def test_closing_as_done_needs_every_step(service: RotationService) -> None:
    """Closing as done with unfinished steps names them."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")
    for number in range(1, 7):
        await service.act(view.id, number, "done", ADMIN, f"r{number}")

    with pytest.raises(InputError) as caught:
        await service.close(view.id, "done", ADMIN, "r-close")

    assert str(caught.value) == (
        f"rotation #{view.id} has unfinished steps 7, 8; finish or skip them first, "
        "or close it as abandoned"
    )


async def test_second_open_rotation_is_refused(service: RotationService) -> None:
    """A token has at most one open rotation."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")

    with pytest.raises(InputError) as caught:
        await service.start(TOKEN, "C2", OTHER_ADMIN, "r1")
    again = await service.start(TOKEN, "C1", ADMIN, "r0")

    assert str(caught.value) == (
        f"PLN_ENTER_TOKEN already has open rotation #{view.id}, started by UADMIN; "
        "close it before starting another"
    )
    assert again == view


async def test_undo_and_repeat_clicks(service: RotationService) -> None:
    """Undo returns a step to pending; marking a done step done changes nothing."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")
    await service.act(view.id, 4, "done", ADMIN, "r1")

    repeat = await service.act(view.id, 4, "done", OTHER_ADMIN, "r2")
    undone = await service.act(view.id, 4, "undo", OTHER_ADMIN, "r3")

    assert (repeat.outcome, repeat.message) == (
        ActionOutcome.UNCHANGED,
        "step 4 is already done (by UADMIN)",
    )
    assert (undone.view.step(4).state, undone.view.step(4).actor) == (
        StepState.PENDING,
        OTHER_ADMIN,
    )
    assert undone.view.finished == 0


@pytest.mark.parametrize(
    ("passed", "state"),
    [(True, StepState.DONE), (False, StepState.FAILED), (None, StepState.PENDING)],
    ids=["passed", "failed", "cannot-check"],
)
async def test_record_check_sets_state_and_evidence(
    service: RotationService, passed: bool | None, state: StepState
) -> None:
    """A pass marks done, a fail failed; a check that could not run keeps the state."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")

    result = await service.record_check(view.id, 3, passed, "updated_at ...", ADMIN)

    assert (result.view.step(3).state, result.view.step(3).evidence) == (
        state,
        "updated_at ...",
    )


@pytest.mark.parametrize(
    ("step", "action", "message"),
    [
        (9, "done", "step must be 1 to 8 but got 9"),
        (0, "done", "step must be 1 to 8 but got 0"),
        (1, "finish", "action must be one of done, skip, undo but got 'finish'"),
    ],
    ids=["step-too-high", "step-zero", "unknown-action"],
)
async def test_bad_click_is_an_input_error(
    service: RotationService, step: int, action: str, message: str
) -> None:
    """Clicks that cannot mean anything name what was expected."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")

    with pytest.raises(InputError) as caught:
        await service.act(view.id, step, action, ADMIN, "r1")

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("get", "rotation #99 does not exist"),
        (
            "start",
            "token must be one with a runbook (OTHER, PLN_ENTER_TOKEN) but got 'X'",
        ),
    ],
    ids=["missing-rotation", "unknown-token"],
)
async def test_unknown_things_are_named(
    store: Store, clock: Clock, call: str, message: str
) -> None:
    """Unknown rotations and tokens without a runbook are input errors."""
    settings = Settings(
        bot_admins=[ADMIN], runbooks={"OTHER": [RunbookStep(title="Only step")]}
    )
    service = RotationService(store, settings, clock)

    with pytest.raises(InputError) as caught:
        if call == "get":
            await service.get(99)
        else:
            await service.start("X", "C1", ADMIN, "r0")

    assert str(caught.value) == message


async def test_configured_runbook_replaces_the_default(
    store: Store, clock: Clock
) -> None:
    """settings.runbooks[token] overrides the built-in steps."""
    steps = [RunbookStep(title="One"), RunbookStep(title="Two", check="github_secret")]
    settings = Settings(bot_admins=[ADMIN], runbooks={TOKEN: steps})

    view = await RotationService(store, settings, clock).start(TOKEN, "C1", ADMIN, None)

    assert [(s.number, s.title, s.check) for s in view.steps] == [
        (1, "One", None),
        (2, "Two", "github_secret"),
    ]


RUNBOOK_TOML = """
[[runbooks.TB_TOKEN]]
title = "Create a new Tinybird read token"
detail = "In the workspace's Tokens page."

[[runbooks.TB_TOKEN]]
title = "Update the GitHub Actions secret"
check = "{check}"
"""


async def test_a_runbook_from_bot_config_is_started_by_its_token_name(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """`[[runbooks.NAME]]` in the TOML file adds a token with its own steps."""
    path = tmp_path / "bot.toml"
    path.write_text(RUNBOOK_TOML.format(check="github_secret"))
    settings = load_settings(bot_config=path, bot_admins=[ADMIN])

    view = await RotationService(store, settings, clock).start(
        "TB_TOKEN", "C1", ADMIN, None
    )

    assert [(s.number, s.title, s.detail, s.check) for s in view.steps] == [
        (1, "Create a new Tinybird read token", "In the workspace's Tokens page.",
         None),
        (2, "Update the GitHub Actions secret", "", "github_secret"),
    ]  # fmt: skip
    assert runbook_for(TOKEN, settings)[2].check == "github_secret"


def test_a_runbook_naming_an_unknown_check_is_refused_at_start_up(
    tmp_path: Path,
) -> None:
    """A misspelt check fails loading, naming the step and the checks there are."""
    path = tmp_path / "bot.toml"
    path.write_text(RUNBOOK_TOML.format(check="ip_log_prefix"))

    with pytest.raises(ValidationError) as caught:
        load_settings(bot_config=path)

    assert "runbooks.TB_TOKEN.1.check" in str(caught.value)
    assert (
        "Input should be 'github_secret', 'remote_env_file' or 'ip_logs_prefix'"
        in str(caught.value)
    )


def test_is_admin_reads_bot_admins() -> None:
    """Only listed user IDs are admins."""
    settings = Settings(bot_admins="U1, U2")

    assert [is_admin(user, settings) for user in ("U1", "U2", "U3")] == [
        True,
        True,
        False,
    ]


async def test_attach_message_remembers_where_the_checklist_is(
    service: RotationService,
) -> None:
    """The Slack message's channel and ts are stored and bump the version."""
    view = await service.start(TOKEN, "C1", ADMIN, "r0")

    attached = await service.attach_message(view.id, "C9", "1733261400.000100")

    assert (attached.channel, attached.message_ts, attached.version) == (
        "C9",
        "1733261400.000100",
        2,
    )
    assert await service.get(view.id) == attached


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["rotations", "x"], "rotation id must be a whole number but got 1 characters"),
        (["rotations", "9"], "rotation #9 does not exist"),
    ],
    ids=["not-a-number", "missing"],
)
def test_the_rotations_command_names_a_bad_id(
    words: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`usage-bot rotations ID` exits 2 with one line on what was wrong."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")

    status = main(words)

    assert status == 2
    assert capsys.readouterr().err.splitlines()[0] == message


def test_the_rotations_command_on_an_empty_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No rotations yet is said plainly, and is an empty list in JSON."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")

    statuses = [main(["rotations"]), main(["rotations", "--json"])]

    assert statuses == [0, 0]
    assert capsys.readouterr().out == "No rotations yet.\n[]\n"
