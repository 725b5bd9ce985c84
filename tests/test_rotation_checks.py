"""Rotation checks: GitHub over HTTP to its stand-in, SSH-backed ones on protocols."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.errors import InputError, SourceError, SourceTimeout
from bot.rotation.checks import (
    CheckResult,
    CheckRunner,
    CheckStatus,
    check_github_secret,
    check_ip_logs_prefix,
    check_remote_env_file,
    token_prefix,
)
from bot.rotation.runbook import PLN_ENTER_TOKEN_STEPS
from bot.rotation.service import RotationStatus, RotationView, StepState, StepView
from bot.standins.github import GitHubStandIn

START = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)
GITHUB_TOKEN = "ghs_standin_token_value"
REPOSITORY = "pollinations/pollinations"
SECRET = "PLN_ENTER_TOKEN"
ENV_FILE = "/srv/enter-services/.env"


@pytest.fixture(scope="module")
def github_server() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(GITHUB_TOKEN, REPOSITORY) as server:
        yield server


@pytest.fixture
def github(github_server: GitHubStandIn) -> GitHubStandIn:
    """The stand-in with no secrets and no requests seen."""
    github_server.remove_secret(SECRET)
    github_server.requests.clear()
    return github_server


def github_settings(github: GitHubStandIn, **changes: object) -> Settings:
    values: dict[str, object] = {
        "github_token": GITHUB_TOKEN,
        "github_api_url": github.url,
        "github_repository": REPOSITORY,
    }
    return Settings(**{**values, **changes})


@pytest.mark.parametrize(
    ("updated_at", "status", "evidence"),
    [
        (
            START + timedelta(minutes=10),
            CheckStatus.PASSED,
            "updated_at 2026-12-03T21:40:00Z, after start 21:30Z",
        ),
        (
            datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
            CheckStatus.FAILED,
            "updated_at 2026-12-02T09:00:00Z, before start 2026-12-03T21:30Z",
        ),
    ],
    ids=["updated-after-start", "updated-before-start"],
)
async def test_github_secret_compares_updated_at_with_start(
    github: GitHubStandIn, updated_at: datetime, status: CheckStatus, evidence: str
) -> None:
    """The secret passes only when GitHub says it changed after the rotation began."""
    github.set_secret(SECRET, updated_at)

    result = await check_github_secret(github_settings(github), SECRET, START)

    assert result == CheckResult("github_secret", status, evidence)
    assert github.requests == [f"/repos/{REPOSITORY}/actions/secrets/{SECRET}"]


@pytest.mark.parametrize(
    ("changes", "status", "evidence"),
    [
        (
            {"github_token": None},
            CheckStatus.CANNOT_CHECK,
            "cannot check: GITHUB_TOKEN is not set",
        ),
        (
            {"github_repository": None},
            CheckStatus.CANNOT_CHECK,
            "cannot check: GITHUB_REPOSITORY must be owner/name but is None",
        ),
        (
            {"github_token": "ghs_wrong"},
            CheckStatus.CANNOT_CHECK,
            "cannot check: GitHub refused GITHUB_TOKEN (401)",
        ),
        (
            {"github_repository": "pollinations/other"},
            CheckStatus.FAILED,
            "secret PLN_ENTER_TOKEN not found in pollinations/other",
        ),
    ],
    ids=["no-token", "no-repository", "wrong-token", "unknown-secret"],
)
async def test_github_secret_never_passes_silently(
    github: GitHubStandIn,
    changes: dict[str, object],
    status: CheckStatus,
    evidence: str,
) -> None:
    """Missing settings, a refused token or an unknown secret say so plainly."""
    github.set_secret(SECRET, START + timedelta(minutes=10))

    result = await check_github_secret(
        github_settings(github, **changes), SECRET, START
    )

    assert (result.status, result.evidence) == (status, evidence)
    assert GITHUB_TOKEN not in result.evidence


async def test_github_down_is_cannot_check() -> None:
    """A GitHub that refuses connections gives 'cannot check', after a retry."""
    with GitHubStandIn(GITHUB_TOKEN) as gone:
        url = gone.url
    settings = Settings(
        github_token=GITHUB_TOKEN, github_api_url=url, github_repository=REPOSITORY
    )

    result = await check_github_secret(settings, SECRET, START)

    assert result.evidence == "cannot check: request failed: ConnectError"
    assert result.passed is None


class FakeHostFiles:
    """File metadata as the SSH collector would report it."""

    def __init__(self, files: dict[str, tuple[datetime, int]]) -> None:
        self.files = files

    async def stat(self, path: str) -> tuple[datetime, int]:
        if path not in self.files:
            raise SourceError("enter-services", f"{path}: no such file")
        return self.files[path]


@pytest.mark.parametrize(
    ("modified_at", "mode", "status", "evidence"),
    [
        (
            START + timedelta(minutes=20),
            0o100600,
            CheckStatus.PASSED,
            f"{ENV_FILE} modified 2026-12-03T21:50:00Z, after start 21:30Z; mode 600",
        ),
        (
            START + timedelta(minutes=20),
            0o100644,
            CheckStatus.FAILED,
            f"{ENV_FILE} modified 2026-12-03T21:50:00Z, after start 21:30Z; "
            "mode 644, expected 600",
        ),
        (
            START - timedelta(minutes=5),
            0o100600,
            CheckStatus.FAILED,
            f"{ENV_FILE} modified 2026-12-03T21:25:00Z, before start 21:30Z; mode 600",
        ),
    ],
    ids=["changed-and-private", "world-readable", "not-changed"],
)
async def test_remote_env_file_needs_a_change_and_mode_600(
    modified_at: datetime, mode: int, status: CheckStatus, evidence: str
) -> None:
    """The env file must have changed since the start and be private to its owner."""
    files = FakeHostFiles({ENV_FILE: (modified_at, mode)})

    result = await check_remote_env_file(files, ENV_FILE, START)

    assert result == CheckResult("remote_env_file", status, evidence)


@pytest.mark.parametrize(
    ("files", "path", "evidence"),
    [
        (None, ENV_FILE, "cannot check: no SSH host or env file path is configured"),
        (
            FakeHostFiles({}),
            ENV_FILE,
            f"cannot check: enter-services: {ENV_FILE}: no such file",
        ),
    ],
    ids=["no-host", "host-error"],
)
async def test_remote_env_file_without_a_host_cannot_check(
    files: FakeHostFiles | None, path: str, evidence: str
) -> None:
    """No collector, or a collector error, is 'cannot check'."""
    result = await check_remote_env_file(files, path, START)

    assert (result.status, result.evidence) == (CheckStatus.CANNOT_CHECK, evidence)


class FakePrefixLog:
    """Token prefix counts as the IP-log collector would report them."""

    def __init__(self, counts: dict[str, int] | Exception) -> None:
        self.counts = counts
        self.asked: list[tuple[datetime, datetime]] = []

    async def token_prefixes(self, since: datetime, until: datetime) -> dict[str, int]:
        self.asked.append((since, until))
        if isinstance(self.counts, Exception):
            raise self.counts
        return self.counts


SINCE, UNTIL = START + timedelta(minutes=30), START + timedelta(minutes=45)
WINDOW = "2026-12-03T22:00:00Z to 2026-12-03T22:15:00Z"


@pytest.mark.parametrize(
    ("counts", "status", "evidence"),
    [
        ({"nEw1": 120}, CheckStatus.PASSED, f"{WINDOW}: nEw1 120; only the new prefix"),
        (
            {"nEw1": 120, "0ld-": 3},
            CheckStatus.FAILED,
            f"{WINDOW}: 0ld- 3, nEw1 120; old prefix 0ld- still used 3 times",
        ),
        (
            {"nEw1": 120, "zz_9": 1, "0ld-": 0},
            CheckStatus.FAILED,
            f"{WINDOW}: nEw1 120, zz_9 1; not the new prefix: zz_9",
        ),
        ({}, CheckStatus.FAILED, f"no requests logged {WINDOW}"),
        (
            SourceTimeout("enter-services", "no answer within 10s"),
            CheckStatus.CANNOT_CHECK,
            "cannot check: enter-services: no answer within 10s",
        ),
    ],
    ids=["only-new", "old-still-used", "unknown-prefix", "no-traffic", "host-timeout"],
)
async def test_ip_logs_show_only_the_new_prefix(
    counts: dict[str, int] | Exception, status: CheckStatus, evidence: str
) -> None:
    """Every request in the window must carry the new prefix and none the old."""
    prefix_log = FakePrefixLog(counts)

    result = await check_ip_logs_prefix(prefix_log, "nEw1", "0ld-", SINCE, UNTIL)

    assert result == CheckResult("ip_logs_prefix", status, evidence)
    assert prefix_log.asked == [(SINCE, UNTIL)]


@pytest.mark.parametrize(
    ("new", "old", "message"),
    [
        (
            "nEw1xyz",
            "0ld-",
            "new token prefix must be exactly 4 characters of A-Z, a-z, 0-9, _ or - "
            "but got 7 characters",
        ),
        (
            "nEw1",
            "0l;d",
            "old token prefix must be exactly 4 characters of A-Z, a-z, 0-9, _ or - "
            "but got 4 characters",
        ),
        (
            "nEw1",
            "nEw1",
            "new token prefix must differ from the old one but both match",
        ),
    ],
    ids=["too-long", "bad-character", "same-prefix"],
)
async def test_bad_prefixes_are_input_errors(new: str, old: str, message: str) -> None:
    """Prefixes are validated before any host is asked, and never echoed back."""
    prefix_log = FakePrefixLog({})

    with pytest.raises(InputError) as caught:
        await check_ip_logs_prefix(prefix_log, new, old, SINCE, UNTIL)

    assert str(caught.value) == message
    assert prefix_log.asked == []


def test_token_prefix_accepts_the_alphabet() -> None:
    """All four kinds of prefix character are accepted."""
    assert token_prefix("aZ9_") == "aZ9_"
    assert token_prefix("-b-c") == "-b-c"


def rotation_with_step_seven_done_at(moment: datetime | None) -> RotationView:
    steps = tuple(
        StepView(
            number=number,
            title=step.title,
            detail=step.detail,
            check=step.check,
            state=StepState.DONE if number == 7 and moment else StepState.PENDING,
            actor="UADMIN" if number == 7 and moment else None,
            updated_at=moment if number == 7 else None,
            evidence=None,
            version=1,
        )
        for number, step in enumerate(PLN_ENTER_TOKEN_STEPS, start=1)
    )
    return RotationView(
        id=1,
        token_name=SECRET,
        channel="C1",
        message_ts=None,
        started_by="UADMIN",
        started_at=START,
        status=RotationStatus.OPEN,
        closed_by=None,
        closed_at=None,
        steps=steps,
        version=2,
    )


@pytest.mark.parametrize(
    ("step_seven_at", "since"),
    [(SINCE, SINCE), (None, START)],
    ids=["since-previous-step", "since-start"],
)
async def test_runner_reads_ip_logs_since_the_previous_step(
    step_seven_at: datetime | None, since: datetime
) -> None:
    """Step 8 looks at logs from when step 7 was done, else from the start."""
    prefix_log = FakePrefixLog({"nEw1": 5})
    runner = CheckRunner(Settings(), prefix_log=prefix_log, clock=lambda: UNTIL)
    rotation = rotation_with_step_seven_done_at(step_seven_at)

    result = await runner.run(rotation, 8, new_prefix="nEw1", old_prefix="0ld-")

    assert result.passed is True
    assert prefix_log.asked == [(since, UNTIL)]


async def test_runner_dispatches_github_and_env_file(github: GitHubStandIn) -> None:
    """Steps 3 and 5 run their named checks; a step without one is an input error."""
    github.set_secret(SECRET, START + timedelta(minutes=1))
    files = FakeHostFiles({ENV_FILE: (START + timedelta(minutes=2), 0o600)})
    runner = CheckRunner(github_settings(github), files=files, env_file=ENV_FILE)
    rotation = rotation_with_step_seven_done_at(None)

    results = [await runner.run(rotation, step) for step in (3, 5)]
    with pytest.raises(InputError) as caught:
        await runner.run(rotation, 2)

    assert [(r.check, r.passed) for r in results] == [
        ("github_secret", True),
        ("remote_env_file", True),
    ]
    assert str(caught.value) == "step 2 has no automatic check"
