"""The service's journal, read over SSH from each configured host at once.

Host keys are always checked against the configured known_hosts file. Every value
placed in a remote command is validated first and then shell-quoted.
"""

import asyncio
import ipaddress
import logging
import re
import shlex
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import asyncssh

from bot.config import Settings
from bot.errors import ConfigError, InputError, SourceError, SourceTimeout
from bot.sources.journal import ChunkedLines, JournalTally
from bot.sources.records import Counts

log = logging.getLogger(__name__)

# journalctl over a busy hour can take far longer than opening the connection.
COMMAND_TIMEOUT_SECONDS = 60.0
_CHUNK_BYTES = 256 * 1024
UNREADABLE_HINT = "not seeing messages from other users and the system"
UNREADABLE = (
    "journal not readable by this user: add it to the systemd-journal group "
    "or set JOURNAL_SUDO=true"
)
_STDERR_KEEP = 4096

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_IPV6 = re.compile(r"\[([0-9A-Fa-f:.]{2,45})\]")
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]{1,200}")
_PATH = re.compile(r"/[A-Za-z0-9_./@+-]{0,1023}")
_SPEC_LIMIT = 300


class QueryKind(StrEnum):
    """Which of our lines a journal query asks journalctl for."""

    TOKENS = "TOKEN-USAGE"
    IPS = "IP-LOG"
    ALL = "TOKEN-USAGE|IP-LOG"


@dataclass(frozen=True)
class JournalTarget:
    """One host to read the journal from, as `user@host[:port]`."""

    user: str
    host: str
    port: int = 22

    @classmethod
    def parse(cls, spec: str) -> "JournalTarget":
        """Validate `user@host[:port]`; raise `InputError` naming what was wrong."""
        shown = spec[:40]
        expected = "user@host[:port] with a plain host name or address"
        if len(spec) > _SPEC_LIMIT or spec.count("@") != 1:
            raise InputError(f"journal host must be {expected}; got {shown!r}")
        user, _, rest = spec.partition("@")
        host, port_text = _split_port(rest)
        if _USER.fullmatch(user) is None or not _valid_host(host):
            raise InputError(f"journal host must be {expected}; got {shown!r}")
        if port_text is None:
            return cls(user, host)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InputError(f"journal host port must be 1-65535; got {shown!r}")
        return cls(user, host, int(port_text))

    @property
    def name(self) -> str:
        """How results and errors name this host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.host if self.port == 22 else f"{host}:{self.port}"


def _split_port(rest: str) -> tuple[str, str | None]:
    bracketed = _IPV6.match(rest)
    if bracketed is not None:
        tail = rest[bracketed.end() :]
        if tail and not tail.startswith(":"):
            return "", None
        return bracketed.group(1), tail[1:] if tail else None
    host, sep, port = rest.partition(":")
    return host, port if sep else None


def _valid_host(host: str) -> bool:
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return _HOSTNAME.fullmatch(host) is not None


@dataclass(frozen=True)
class SshOptions:
    """How to reach the journal hosts; built from settings by `from_settings`."""

    known_hosts: Path
    client_key: Path | None = None
    unit: str = "text-pollinations.service"
    sudo: bool = False
    connect_timeout: float = 10.0
    command_timeout: float = COMMAND_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if _UNIT.fullmatch(self.unit) is None:
            raise ConfigError(
                f"JOURNAL_UNIT must be a systemd unit name; got {self.unit[:40]!r}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> "SshOptions":
        """The options in `settings`; a missing known_hosts file is a `ConfigError`."""
        if settings.ssh_known_hosts is None:
            raise ConfigError(
                "SSH_KNOWN_HOSTS must name a known_hosts file: host keys are always "
                "verified; got nothing"
            )
        return cls(
            known_hosts=settings.ssh_known_hosts,
            client_key=settings.ssh_key_path,
            unit=settings.journal_unit,
            sudo=settings.journal_sudo,
            connect_timeout=settings.ssh_timeout_seconds,
        )


@dataclass(frozen=True)
class HostReport:
    """What one host sent back."""

    host: str
    lines: int
    unparsed: int
    bytes_received: int


@dataclass
class JournalResult:
    """Merged journal of the hosts that answered; one error per host that did not."""

    hosts: list[HostReport] = field(default_factory=list)
    tally: JournalTally = field(default_factory=JournalTally)
    errors: list[SourceError] = field(default_factory=list)

    @property
    def models(self) -> dict[str, Counts]:
        """Merged Counts per provider model ID from `[TOKEN-USAGE]` lines."""
        return self.tally.models


class RemoteStat(NamedTuple):
    """A remote file's modification time and permission bits."""

    mtime: datetime
    mode: int


@dataclass(frozen=True)
class Credentials:
    """The trusted host keys and the client key, read once for all hosts."""

    options: SshOptions
    known_hosts: asyncssh.SSHKnownHosts
    client_key: asyncssh.SSHKey | None


async def load_credentials(options: SshOptions) -> Credentials:
    """Read known_hosts and the client key; a `ConfigError` names the bad file."""
    return await asyncio.to_thread(_read_credentials, options)


def _read_credentials(options: SshOptions) -> Credentials:
    try:
        known_hosts = asyncssh.read_known_hosts(str(options.known_hosts))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"SSH_KNOWN_HOSTS must name a readable known_hosts file; got "
            f"{str(options.known_hosts)[:80]!r} ({_why(exc)})"
        ) from None

    if options.client_key is None:
        return Credentials(options, known_hosts, None)
    try:
        client_key = asyncssh.read_private_key(str(options.client_key))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise ConfigError(
            f"SSH_KEY_PATH must name a readable private key without a passphrase; "
            f"got {str(options.client_key)[:80]!r} ({_why(exc)})"
        ) from None
    return Credentials(options, known_hosts, client_key)


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:80]


def journal_command(
    unit: str, start: datetime, end: datetime, kind: QueryKind, sudo: bool
) -> str:
    """The remote command line, with every value quoted."""
    if _UNIT.fullmatch(unit) is None:
        raise ConfigError(f"journal unit must be a systemd unit name; got {unit!r}")
    argv = [
        "journalctl",
        "-u",
        unit,
        "--since",
        f"@{int(start.timestamp())}",
        "--until",
        f"@{int(end.timestamp())}",
        "--grep",
        QueryKind(kind).value,
        "-o",
        "short-iso",
        "--no-pager",
    ]
    if sudo:
        argv = ["sudo", "-n", *argv]
    return shlex.join(argv)


def stat_command(path: str) -> str:
    """`stat -c '%Y %a' PATH` for an absolute path of plain characters."""
    if _PATH.fullmatch(path) is None or "/../" in f"{path}/":
        raise InputError(
            f"remote path must be absolute with plain characters; got {path[:40]!r}"
        )
    return shlex.join(["stat", "-c", "%Y %a", path])


async def read_journal(
    targets: list[JournalTarget],
    options: SshOptions,
    start: datetime,
    end: datetime,
    kind: QueryKind = QueryKind.ALL,
) -> JournalResult:
    """Query every host at once and merge what came back; failures are per host.

    An unreadable known_hosts file or client key is a `ConfigError` raised before
    any host is contacted.
    """
    command = journal_command(options.unit, start, end, kind, options.sudo)
    credentials = await load_credentials(options)
    outcomes = await asyncio.gather(
        *(_read_host(target, credentials, command) for target in targets)
    )

    result = JournalResult()
    for outcome in outcomes:
        if isinstance(outcome, SourceError):
            result.errors.append(outcome)
            continue
        report, tally = outcome
        result.hosts.append(report)
        result.tally.merge(tally)
    return result


async def read_journal_from_settings(
    settings: Settings,
    start: datetime,
    end: datetime,
    kind: QueryKind = QueryKind.ALL,
) -> JournalResult:
    """`read_journal` for the hosts and options in `settings`."""
    if not settings.journal_hosts:
        raise ConfigError("JOURNAL_HOSTS must name at least one user@host; got none")
    try:
        targets = [JournalTarget.parse(spec) for spec in settings.journal_hosts]
    except InputError as exc:
        raise ConfigError(f"JOURNAL_HOSTS: {exc}") from None
    return await read_journal(
        targets, SshOptions.from_settings(settings), start, end, kind
    )


async def stat_remote_file(
    target: JournalTarget, path: str, options: SshOptions
) -> RemoteStat:
    """The mtime and mode of a file on `target`, via `stat -c '%Y %a'`."""
    command = stat_command(path)
    if options.sudo:
        command = f"sudo -n {command}"
    try:
        credentials = await load_credentials(options)
    except ConfigError as exc:
        raise SourceError(target.name, str(exc)) from None
    try:
        async with await _connect(target, credentials) as conn:
            async with asyncio.timeout(options.command_timeout):
                done = await conn.run(command, check=False)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise _named(target, credentials, exc) from exc

    stdout = str(done.stdout or "")
    if done.exit_status != 0:
        raise _exit_error(target, "stat", done.exit_status, str(done.stderr or ""))
    mtime_text, _, mode_text = stdout.strip().partition(" ")
    try:
        mtime = datetime.fromtimestamp(int(mtime_text), UTC)
        mode = int(mode_text, 8)
    except ValueError:
        raise SourceError(
            target.name, f"stat must print '<epoch> <octal mode>'; got {stdout[:40]!r}"
        ) from None
    return RemoteStat(mtime, mode)


async def _read_host(
    target: JournalTarget, credentials: Credentials, command: str
) -> tuple[HostReport, JournalTally] | SourceError:
    started = time.monotonic()
    outcome: tuple[HostReport, JournalTally] | SourceError
    try:
        async with await _connect(target, credentials) as conn:
            async with asyncio.timeout(credentials.options.command_timeout):
                outcome = await _stream(target, conn, command)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        outcome = _named(target, credentials, exc)
    except SourceError as exc:
        outcome = exc

    log.info(
        "journal host=%s seconds=%.2f outcome=%s",
        target.name,
        time.monotonic() - started,
        outcome.message if isinstance(outcome, SourceError) else "ok",
    )
    return outcome


async def _connect(target: JournalTarget, credentials: Credentials) -> Any:
    options = credentials.options
    extra: dict[str, Any] = {}
    if credentials.client_key is not None:
        extra = {"client_keys": [credentials.client_key], "agent_path": None}
    return await asyncssh.connect(
        target.host,
        target.port,
        username=target.user,
        known_hosts=credentials.known_hosts,
        config=None,
        connect_timeout=options.connect_timeout,
        login_timeout=options.connect_timeout,
        password=None,
        kbdint_auth=False,
        **extra,
    )


async def _stream(
    target: JournalTarget, conn: Any, command: str
) -> tuple[HostReport, JournalTally]:
    tally = JournalTally()
    lines = ChunkedLines(tally)
    received = 0
    async with conn.create_process(command, encoding=None) as process:
        stderr = asyncio.ensure_future(_head(process.stderr))
        # Parsed as it arrives: memory holds one chunk, never the whole output.
        while chunk := await process.stdout.read(_CHUNK_BYTES):
            received += len(chunk)
            lines.feed(chunk)
        lines.close()
        await process.wait()
        errors = await stderr

    status = process.exit_status
    message = errors.decode("utf-8", "replace")
    # journalctl --grep exits 1 when nothing matched, after printing this marker.
    quiet = status == 1 and tally.no_entries and not message.strip()
    if status != 0 and not quiet:
        raise _exit_error(target, "journalctl", status, message)
    # A user outside systemd-journal sees only its own entries: journalctl exits 0
    # with this hint, and an empty answer would pass for a quiet service.
    if UNREADABLE_HINT in message:
        raise SourceError(target.name, UNREADABLE)
    report = HostReport(target.name, tally.lines, tally.unparsed, received)
    return report, tally


async def _head(reader: Any) -> bytes:
    kept = b""
    while chunk := await reader.read(_STDERR_KEEP):
        if len(kept) < _STDERR_KEEP:
            kept += chunk
    return kept[:_STDERR_KEEP]


def _exit_error(
    target: JournalTarget, program: str, status: int | None, stderr: str
) -> SourceError:
    first = stderr.strip().splitlines()[0] if stderr.strip() else "no message"
    return SourceError(target.name, f"{program} exited {status}: {first[:200]}")


def _named(
    target: JournalTarget, credentials: Credentials, exc: BaseException
) -> SourceError:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return SourceTimeout(target.name, "timed out")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        if _has_entry(credentials.known_hosts, target):
            return SourceError(target.name, "host key mismatch")
        return SourceError(target.name, "host key not in known_hosts")
    if isinstance(exc, asyncssh.PermissionDenied):
        return SourceError(target.name, "authentication failed")
    if isinstance(exc, ConnectionRefusedError):
        return SourceError(target.name, "connection refused")
    if isinstance(exc, asyncssh.Error):
        return SourceError(target.name, f"ssh failed: {exc.reason}")
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return SourceError(target.name, f"connection failed: {detail}")


def _has_entry(known_hosts: asyncssh.SSHKnownHosts, target: JournalTarget) -> bool:
    # Only the name is matched: an entry written for the host's resolved address
    # alone is reported as missing rather than as a mismatch.
    port = None if target.port == 22 else target.port
    host_keys, ca_keys, *_ = known_hosts.match(target.host, target.host, port)
    return bool(host_keys or ca_keys)
