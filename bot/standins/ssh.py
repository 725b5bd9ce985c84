"""A real SSH server on 127.0.0.1 whose `journalctl` replays a journal file.

It answers the few commands the bot sends (`journalctl`, `stat -c '%Y %a'`, either
behind `sudo -n`) and exits 127 for anything else, records every command string it
receives and counts the bytes it sends. Used by the tests and by the demo; run
`python -m bot.standins.ssh --journal FILE` to serve one by hand.
"""

import argparse
import asyncio
import contextlib
import re
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import asyncssh

DEFAULT_USER = "usage-bot"
DEFAULT_HOST = "enter-services"
NOT_FOUND = 127
_BATCH_LINES = 4096
_PREFIX_CHARS = len("2026-12-03T21:00:05+0000")


class Fault(StrEnum):
    """How the stand-in misbehaves, for tests of the collector's error paths."""

    NONE = "none"
    HANG = "hang"
    EXIT_NONZERO = "exit-nonzero"
    # journalctl run by a user outside systemd-journal: nothing, exit 0, a hint.
    UNREADABLE = "unreadable"


FAULT_STDERR = "Failed to add filter for units: No data available\nsecond line\n"
UNREADABLE_STDERR = (
    "Hint: You are currently not seeing messages from other users and the system.\n"
    "      Users in groups 'adm', 'systemd-journal' can see all messages.\n"
)


@dataclass(frozen=True)
class FakeFile:
    """What `stat -c '%Y %a'` reports for one path."""

    mtime: int
    mode: int


def short_iso(ts: datetime) -> str:
    """journald's `-o short-iso` timestamp, e.g. `2026-12-03T21:00:05+0000`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S%z")


def format_token_usage(
    ts: datetime,
    model_id: str,
    input: int,
    output: int,
    host: str = DEFAULT_HOST,
) -> str:
    """One `[TOKEN-USAGE]` journal line as `journalctl -o short-iso` prints it."""
    message = f"[TOKEN-USAGE] model={model_id} input={input} output={output}"
    return f"{short_iso(ts)} {host} node[812]: {message}"


def format_ip_log(
    ts: datetime,
    ip: str,
    path: str,
    model: str,
    token_prefix: str | None,
    host: str = DEFAULT_HOST,
) -> str:
    """One `[IP-LOG]` journal line; `token_prefix=None` leaves the field out."""
    stamp = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    message = f"[IP-LOG] [{stamp}] [text] IP={ip} path={path} model={model}"
    if token_prefix is not None:
        message += f" token={token_prefix}"
    return f"{short_iso(ts)} {host} node[812]: {message}"


def format_other(ts: datetime, message: str, host: str = DEFAULT_HOST) -> str:
    """Any other line the unit writes."""
    return f"{short_iso(ts)} {host} node[812]: {message}"


@dataclass(frozen=True)
class JournalQuery:
    """The `journalctl` options the stand-in understood."""

    unit: str | None = None
    since: int | None = None
    until: int | None = None
    grep: re.Pattern[str] | None = None


class UsageError(Exception):
    """A command line the stand-in's journalctl does not accept."""


def parse_journalctl(argv: list[str]) -> JournalQuery:
    """Read journalctl's arguments; raise `UsageError` on anything unknown."""
    values: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg in ("-u", "--unit", "--since", "--until", "--grep", "-g", "-o"):
            value = next(args, None)
            if value is None:
                raise UsageError(f"option {arg} requires an argument")
            values[arg] = value
        elif arg != "--no-pager":
            raise UsageError(f"unrecognized option '{arg}'")
    if values.get("-o", "short-iso") != "short-iso":
        raise UsageError(f"unsupported output mode '{values['-o']}'")

    pattern = values.get("--grep", values.get("-g"))
    return JournalQuery(
        unit=values.get("-u", values.get("--unit")),
        since=_epoch(values.get("--since")),
        until=_epoch(values.get("--until")),
        grep=None if pattern is None else re.compile(pattern),
    )


def _epoch(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.startswith("@") or not value[1:].isdigit():
        raise UsageError(f"failed to parse timestamp: {value}")
    return int(value[1:])


def select_lines(lines: Iterator[str], query: JournalQuery) -> Iterator[str]:
    """The journal lines that `query` asks for, in order (since/until inclusive)."""
    epochs: dict[str, int] = {}
    for line in lines:
        stamp = line[:_PREFIX_CHARS]
        epoch = epochs.get(stamp)
        if epoch is None:
            epoch = epochs[stamp] = int(datetime.fromisoformat(stamp).timestamp())
        if query.since is not None and epoch < query.since:
            continue
        if query.until is not None and epoch > query.until:
            continue
        if query.grep is not None:
            message = line.partition(": ")[2]
            if query.grep.search(message) is None:
                continue
        yield line if line.endswith("\n") else line + "\n"


class SshStandin:
    """An asyncssh server with a generated host key and one authorised client key."""

    def __init__(
        self,
        workdir: Path,
        journal: Mapping[str, Path] | None = None,
        files: Mapping[str, FakeFile] | None = None,
        user: str = DEFAULT_USER,
        client_key: asyncssh.SSHKey | None = None,
    ) -> None:
        self.workdir = workdir
        self.journal = dict(journal or {})
        self.files = dict(files or {})
        self.user = user
        self.fault = Fault.NONE
        self.commands: list[str] = []
        self.bytes_sent = 0
        self.port = 0
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        # Pass another stand-in's key to let one client key log in to both.
        self.client_key = client_key or asyncssh.generate_private_key("ssh-ed25519")
        self.known_hosts_path = workdir / "known_hosts"
        self.client_key_path = workdir / "client_key"
        self._server: Any = None
        self._released = asyncio.Event()

    @property
    def target(self) -> str:
        """The `user@host:port` string the collector is configured with."""
        return f"{self.user}@127.0.0.1:{self.port}"

    def settings_values(self) -> dict[str, Any]:
        """Settings fields that point the bot's journal collector at this server."""
        return {
            "journal_hosts": [self.target],
            "ssh_known_hosts": self.known_hosts_path,
            "ssh_key_path": self.client_key_path,
        }

    def known_hosts_line(self) -> str:
        """The line a known_hosts file needs to trust this server."""
        key = self.host_key.export_public_key().decode().strip()
        return f"[127.0.0.1]:{self.port} {key}\n"

    async def start(self) -> None:
        """Listen on a free port and write known_hosts and the client key."""
        authorized = asyncssh.import_authorized_keys(
            self.client_key.export_public_key().decode()
        )
        self._server = await asyncssh.create_server(
            asyncssh.SSHServer,
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            process_factory=self._handle,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        await asyncio.to_thread(self._write_keys)

    async def stop(self) -> None:
        """Release hanging commands and stop listening."""
        self._released.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> "SshStandin":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _write_keys(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.known_hosts_path.write_text(self.known_hosts_line())
        self.client_key.write_private_key(str(self.client_key_path))
        self.client_key_path.chmod(0o600)

    async def _handle(self, process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        self.commands.append(command)
        try:
            status = await self._run(process, command)
        except (asyncssh.Error, OSError):
            status = 1
        process.exit(status)

    async def _run(self, process: asyncssh.SSHServerProcess[str], command: str) -> int:
        try:
            argv = shlex.split(command)
        except ValueError:
            argv = []
        if argv[:2] == ["sudo", "-n"]:
            argv = argv[2:]
        if self.fault is Fault.HANG:
            await self._released.wait()
            return 1
        if self.fault is Fault.EXIT_NONZERO:
            process.stderr.write(FAULT_STDERR)
            return 1
        if self.fault is Fault.UNREADABLE:
            process.stderr.write(UNREADABLE_STDERR)
            await self._send(process, "-- No entries --\n")
            return 0

        if argv[:1] == ["journalctl"]:
            return await self._journalctl(process, argv[1:])
        if argv[:3] == ["stat", "-c", "%Y %a"] and len(argv) == 4:
            return self._stat(process, argv[3])
        name = argv[0] if argv else ""
        process.stderr.write(f"bash: {name}: command not found\n")
        return NOT_FOUND

    async def _journalctl(
        self, process: asyncssh.SSHServerProcess[str], argv: list[str]
    ) -> int:
        try:
            query = parse_journalctl(argv)
        except (UsageError, re.error) as exc:
            process.stderr.write(f"journalctl: {exc}\n")
            return 1

        path = self.journal.get(query.unit or "")
        shown = 0
        if path is not None:
            handle = await asyncio.to_thread(path.open, encoding="utf-8")
            try:
                selected = select_lines(iter(handle), query)
                while batch := await asyncio.to_thread(_take, selected):
                    shown += len(batch)
                    await self._send(process, "".join(batch))
            finally:
                await asyncio.to_thread(handle.close)

        if shown == 0:
            await self._send(process, "-- No entries --\n")
            # journalctl --grep exits 1 when nothing matched, like grep.
            return 1 if query.grep is not None else 0
        return 0

    def _stat(self, process: asyncssh.SSHServerProcess[str], path: str) -> int:
        found = self.files.get(path)
        if found is None:
            process.stderr.write(
                f"stat: cannot statx '{path}': No such file or directory\n"
            )
            return 1
        text = f"{found.mtime} {found.mode:o}\n"
        self.bytes_sent += len(text)
        process.stdout.write(text)
        return 0

    async def _send(self, process: asyncssh.SSHServerProcess[str], text: str) -> None:
        self.bytes_sent += len(text.encode())
        process.stdout.write(text)
        await process.stdout.drain()


def _take(lines: Iterator[str]) -> list[str]:
    batch = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _BATCH_LINES:
            break
    return batch


def write_journal(path: Path, lines: list[str]) -> Path:
    """Write journal lines to `path` (blocking: call it off the event loop)."""
    handle: TextIO
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path


async def serve_by_hand(
    journal: Path, unit: str, hosts: int, workdir: Path
) -> list[SshStandin]:
    """Start `hosts` stand-ins replaying `journal`, trusted by one known_hosts file.

    They share one client key, so a single SSH_KEY_PATH logs in to all of them.
    """
    first = SshStandin(workdir / "host-1", {unit: journal})
    standins = [first] + [
        SshStandin(workdir / f"host-{n}", {unit: journal}, client_key=first.client_key)
        for n in range(2, hosts + 1)
    ]
    for standin in standins:
        await standin.start()
    known_hosts = workdir / "known_hosts"
    lines = "".join(standin.known_hosts_line() for standin in standins)
    await asyncio.to_thread(known_hosts.write_text, lines)
    return standins


def environment_lines(standins: list[SshStandin], unit: str, workdir: Path) -> str:
    """The settings that point `usage-bot` at running stand-ins, as shell exports."""
    return (
        f"export JOURNAL_HOSTS={','.join(s.target for s in standins)}\n"
        f"export JOURNAL_UNIT={shlex.quote(unit)}\n"
        f"export SSH_KEY_PATH={shlex.quote(str(standins[0].client_key_path))}\n"
        f"export SSH_KNOWN_HOSTS={shlex.quote(str(workdir / 'known_hosts'))}"
    )


async def _serve(args: argparse.Namespace) -> None:
    workdir: Path = args.workdir or Path(tempfile.mkdtemp("-ssh-standin"))
    standins = await serve_by_hand(args.journal, args.unit, args.hosts, workdir)
    print(environment_lines(standins, args.unit, workdir), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for standin in standins:
            await standin.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve a journal file over SSH on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--journal", type=Path, required=True, help="lines to replay")
    parser.add_argument("--unit", default="text-pollinations.service")
    parser.add_argument("--hosts", type=int, default=1, help="how many servers")
    parser.add_argument("--workdir", type=Path, help="keys and known_hosts go here")
    args = parser.parse_args(argv)
    if not args.journal.is_file():
        parser.error(f"--journal must be a file; got {str(args.journal)!r}")
    if args.hosts < 1:
        parser.error(f"--hosts must be at least 1; got {args.hosts}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
