"""Automatic checks behind runbook steps: each returns evidence, never a silent pass."""

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, get_args

import httpx

from bot.config import RunbookCheck, Settings
from bot.errors import InputError, SourceError
from bot.rotation.service import Clock, RotationView

log = logging.getLogger(__name__)

GITHUB_TIMEOUT_SECONDS = 10.0
GITHUB_ATTEMPTS = 2
KNOWN_CHECKS: tuple[str, ...] = get_args(RunbookCheck)
_PREFIX = re.compile(r"[A-Za-z0-9_-]{4}")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class CheckStatus(StrEnum):
    """How a check ended."""

    PASSED = "passed"
    FAILED = "failed"
    CANNOT_CHECK = "cannot_check"


@dataclass(frozen=True)
class CheckResult:
    """A check's verdict and the evidence behind it (never a secret)."""

    check: str
    status: CheckStatus
    evidence: str

    @property
    def passed(self) -> bool | None:
        """True or False for a verdict, None when the check could not run."""
        if self.status is CheckStatus.CANNOT_CHECK:
            return None
        return self.status is CheckStatus.PASSED


class RemoteFiles(Protocol):
    """Reads file metadata on the service host."""

    async def stat(self, path: str) -> tuple[datetime, int]:
        """The file's modification time (aware UTC) and permission bits."""
        ...


class TokenPrefixLog(Protocol):
    """Counts gateway requests by the first four characters of their token."""

    async def token_prefixes(self, since: datetime, until: datetime) -> dict[str, int]:
        """Requests per token prefix between `since` and `until`."""
        ...


def token_prefix(value: str, name: str = "prefix") -> str:
    """`value` if it is a token prefix: exactly 4 of A-Z, a-z, 0-9, _ and -."""
    if _PREFIX.fullmatch(value) is None:
        raise InputError(
            f"{name} must be exactly 4 characters of A-Z, a-z, 0-9, _ or - "
            f"but got {len(value)} characters"
        )
    return value


async def check_github_secret(
    settings: Settings,
    secret_name: str,
    started_at: datetime,
    client: httpx.AsyncClient | None = None,
) -> CheckResult:
    """Pass when GitHub says Actions secret `secret_name` changed after `started_at`."""
    name = "github_secret"
    if settings.github_token is None:
        return _cannot(name, "GITHUB_TOKEN is not set")
    repository = settings.github_repository
    if repository is None or _REPOSITORY.fullmatch(repository) is None:
        return _cannot(
            name, f"GITHUB_REPOSITORY must be owner/name but is {repository}"
        )
    if _SECRET_NAME.fullmatch(secret_name) is None:
        raise InputError(
            f"secret name must be letters, digits and _ but got {secret_name!r}"
        )

    base = settings.github_api_url.rstrip("/")
    url = f"{base}/repos/{repository}/actions/secrets/{secret_name}"
    headers = {
        "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    try:
        response = await _get(url, headers, client)
    except SourceError as exc:
        return _cannot(name, exc.message)

    if response.status_code in {401, 403}:
        return _cannot(name, f"GitHub refused GITHUB_TOKEN ({response.status_code})")
    if response.status_code == 404:
        return CheckResult(
            name, CheckStatus.FAILED, f"secret {secret_name} not found in {repository}"
        )
    if response.status_code != 200:
        return _cannot(name, f"GitHub answered {response.status_code}")
    try:
        updated_at = datetime.fromisoformat(response.json()["updated_at"])
    except (ValueError, KeyError, TypeError):
        return _cannot(name, "GitHub's answer has no readable updated_at")
    return _after_start(name, f"updated_at {_iso(updated_at)}", updated_at, started_at)


async def _get(
    url: str, headers: dict[str, str], client: httpx.AsyncClient | None
) -> httpx.Response:
    if client is None:
        async with httpx.AsyncClient(timeout=GITHUB_TIMEOUT_SECONDS) as own:
            return await _get(url, headers, own)

    for attempt in range(1, GITHUB_ATTEMPTS + 1):
        began = time.monotonic()
        try:
            response = await client.get(
                url, headers=headers, timeout=GITHUB_TIMEOUT_SECONDS
            )
        except httpx.TimeoutException as exc:
            failure = SourceError(
                "github", f"no answer within {GITHUB_TIMEOUT_SECONDS:g}s"
            )
            cause: Exception = exc
        except httpx.HTTPError as exc:
            failure = SourceError("github", f"request failed: {type(exc).__name__}")
            cause = exc
        else:
            log.info(
                "github secret status=%s attempt=%d duration_ms=%d",
                response.status_code,
                attempt,
                (time.monotonic() - began) * 1000,
            )
            if response.status_code < 500 or attempt == GITHUB_ATTEMPTS:
                return response
            continue
        if attempt == GITHUB_ATTEMPTS:
            raise failure from cause
    raise AssertionError("unreachable: the last attempt returns or raises")


async def check_remote_env_file(
    files: RemoteFiles | None, path: str | None, started_at: datetime
) -> CheckResult:
    """Pass when the env file changed after `started_at` and has mode 600."""
    name = "remote_env_file"
    if files is None or path is None:
        return _cannot(name, "no SSH host or env file path is configured")
    try:
        modified_at, mode = await files.stat(path)
    except SourceError as exc:
        return _cannot(name, str(exc))

    permissions = mode & 0o777
    timing = _after_start(
        name, f"{path} modified {_iso(modified_at)}", modified_at, started_at
    )
    evidence = f"{timing.evidence}; mode {permissions:o}"
    if permissions != 0o600:
        return CheckResult(name, CheckStatus.FAILED, f"{evidence}, expected 600")
    return CheckResult(name, timing.status, evidence)


async def check_ip_logs_prefix(
    log_source: TokenPrefixLog | None,
    new_prefix: str,
    old_prefix: str,
    since: datetime,
    until: datetime,
) -> CheckResult:
    """Pass when every request since `since` used the new token prefix."""
    name = "ip_logs_prefix"
    token_prefix(new_prefix, "new token prefix")
    token_prefix(old_prefix, "old token prefix")
    if new_prefix == old_prefix:
        raise InputError("new token prefix must differ from the old one but both match")
    if log_source is None:
        return _cannot(name, "no IP log source is configured")
    try:
        counts = await log_source.token_prefixes(since, until)
    except SourceError as exc:
        return _cannot(name, str(exc))

    seen = {prefix: count for prefix, count in counts.items() if count > 0}
    window = f"{_iso(since)} to {_iso(until)}"
    if not seen:
        return CheckResult(name, CheckStatus.FAILED, f"no requests logged {window}")
    listed = ", ".join(f"{prefix} {seen[prefix]}" for prefix in sorted(seen))
    evidence = f"{window}: {listed}"
    if old_prefix in seen:
        return CheckResult(
            name,
            CheckStatus.FAILED,
            f"{evidence}; old prefix {old_prefix} still used {seen[old_prefix]} times",
        )
    others = sorted(set(seen) - {new_prefix})
    if others:
        return CheckResult(
            name,
            CheckStatus.FAILED,
            f"{evidence}; not the new prefix: {', '.join(others)}",
        )
    return CheckResult(name, CheckStatus.PASSED, f"{evidence}; only the new prefix")


class CheckRunner:
    """Runs the check a runbook step names, with the collaborators configured."""

    def __init__(
        self,
        settings: Settings,
        *,
        files: RemoteFiles | None = None,
        env_file: str | None = None,
        prefix_log: TokenPrefixLog | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._files = files
        self._env_file = env_file
        self._prefix_log = prefix_log
        self._http = http
        self._clock = clock or (lambda: datetime.now(UTC))

    async def run(
        self,
        rotation: RotationView,
        step: int,
        new_prefix: str | None = None,
        old_prefix: str | None = None,
    ) -> CheckResult:
        """The result of step `step`'s check for `rotation`."""
        if not 1 <= step <= rotation.total:
            raise InputError(f"step must be 1 to {rotation.total} but got {step}")
        check = rotation.step(step).check
        if check == "github_secret":
            return await check_github_secret(
                self._settings, rotation.token_name, rotation.started_at, self._http
            )
        if check == "remote_env_file":
            return await check_remote_env_file(
                self._files, self._env_file, rotation.started_at
            )
        if check == "ip_logs_prefix":
            if new_prefix is None or old_prefix is None:
                raise InputError("this check needs the new and the old token prefix")
            return await check_ip_logs_prefix(
                self._prefix_log,
                new_prefix,
                old_prefix,
                _previous_step_time(rotation, step),
                self._clock(),
            )
        if check is None:
            raise InputError(f"step {step} has no automatic check")
        raise InputError(
            f"check must be one of {', '.join(KNOWN_CHECKS)} but step {step} names "
            f"{check!r}"
        )


def _previous_step_time(rotation: RotationView, step: int) -> datetime:
    previous = rotation.step(step - 1).updated_at if step > 1 else None
    return previous or rotation.started_at


def _after_start(
    name: str, fact: str, changed_at: datetime, started_at: datetime
) -> CheckResult:
    if changed_at > started_at:
        return CheckResult(
            name,
            CheckStatus.PASSED,
            f"{fact}, after start {_short(started_at, changed_at)}",
        )
    return CheckResult(
        name,
        CheckStatus.FAILED,
        f"{fact}, before start {_short(started_at, changed_at)}",
    )


def _cannot(name: str, reason: str) -> CheckResult:
    return CheckResult(name, CheckStatus.CANNOT_CHECK, f"cannot check: {reason}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(moment: datetime, beside: datetime) -> str:
    # The start reads as a clock time when it falls on the same day as the fact.
    moment, beside = moment.astimezone(UTC), beside.astimezone(UTC)
    if moment.date() == beside.date():
        return moment.strftime("%H:%MZ")
    return moment.strftime("%Y-%m-%dT%H:%MZ")
