"""The journal collector over real SSH against the stand-in: figures, faults, input."""

import asyncio
import shlex
import socket
from datetime import UTC, datetime
from pathlib import Path

import asyncssh
import pytest

from bot.config import Settings
from bot.errors import ConfigError, InputError, SourceError, SourceTimeout
from bot.sources.records import Counts
from bot.sources.ssh import (
    HostReport,
    JournalTarget,
    QueryKind,
    SshOptions,
    read_journal,
    read_journal_from_settings,
    stat_remote_file,
)
from bot.standins.ssh import Fault, SshStandin, environment_lines, serve_by_hand
from tests.fixtures_ssh import (
    ENV_FILE,
    HAIKU,
    SONNET,
    T0,
    UNIT,
    at,
    journal_file,
    options_for,
    ssh_standin,
    target_of,
)

__all__ = ["journal_file", "ssh_standin"]

SINCE = int(T0.timestamp())
HOUR_COMMAND = (
    f"journalctl -u {UNIT} --since @{SINCE} --until @{SINCE + 3600} "
    "--grep 'TOKEN-USAGE|IP-LOG' -o short-iso --no-pager"
)


async def test_known_journal_gives_exact_figures(ssh_standin: SshStandin) -> None:
    """An hour of the known journal: per-model counts, IPs, lines and bytes."""
    result = await read_journal(
        [target_of(ssh_standin)], options_for(ssh_standin), T0, at(60)
    )

    assert ssh_standin.commands == [HOUR_COMMAND]
    assert result.errors == []
    assert result.hosts == [
        HostReport(f"127.0.0.1:{ssh_standin.port}", 11, 2, ssh_standin.bytes_sent)
    ]
    assert result.models == {
        SONNET: Counts(invocations=3, input_tokens=401, output_tokens=61),
        HAIKU: Counts(invocations=2, input_tokens=57, output_tokens=6),
    }
    ips = result.tally.ips.by_ip
    assert {ip: a.requests for ip, a in ips.items()} == {
        "172.69.59.125": 2,
        "203.0.113.9": 2,
    }
    assert ips["172.69.59.125"].token_prefixes == {"sk_a": 2}


@pytest.mark.parametrize(
    ("start", "end", "kind", "models", "lines"),
    [
        (at(50), at(50), QueryKind.ALL, {SONNET: Counts(1, 1, 1)}, 1),
        (at(-5), at(-5), QueryKind.ALL, {SONNET: Counts(1, 999, 999)}, 1),
        (at(1), at(3), QueryKind.IPS, {}, 3),
        (
            at(1),
            at(3),
            QueryKind.TOKENS,
            {SONNET: Counts(2, 400, 60), HAIKU: Counts(1, 50, 5)},
            3,
        ),
    ],
    ids=["one-minute", "before-hour", "ip-lines-only", "token-lines-only"],
)
async def test_since_until_and_kind_are_honoured(
    ssh_standin: SshStandin,
    start: datetime,
    end: datetime,
    kind: QueryKind,
    models: dict[str, Counts],
    lines: int,
) -> None:
    """Only lines in [since, until] of the asked kind come back."""
    result = await read_journal(
        [target_of(ssh_standin)], options_for(ssh_standin), start, end, kind
    )

    assert result.models == models
    assert result.hosts[0].lines == lines
    assert f"--grep {shlex.quote(kind.value)} " in ssh_standin.commands[0]


async def test_quiet_window_is_empty_not_an_error(ssh_standin: SshStandin) -> None:
    """journalctl --grep exits 1 on no match; that is an empty answer."""
    quiet = datetime(2026, 1, 1, tzinfo=UTC)

    result = await read_journal(
        [target_of(ssh_standin)], options_for(ssh_standin), quiet, quiet
    )

    assert result.errors == []
    assert result.models == {}
    assert (result.hosts[0].lines, result.hosts[0].unparsed) == (1, 0)


async def test_sudo_prefixes_the_command(ssh_standin: SshStandin) -> None:
    """With JOURNAL_SUDO the command runs under `sudo -n`, and still answers."""
    result = await read_journal(
        [target_of(ssh_standin)], options_for(ssh_standin, sudo=True), T0, at(60)
    )

    assert ssh_standin.commands == [f"sudo -n {HOUR_COMMAND}"]
    assert result.models[HAIKU] == Counts(2, 57, 6)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("fault", "message", "error_type"),
    [
        ("host-key", "host key mismatch", SourceError),
        ("host-unknown", "host key not in known_hosts", SourceError),
        ("refused", "connection refused", SourceError),
        ("auth", "authentication failed", SourceError),
        ("hang", "timed out", SourceTimeout),
        (
            "exit",
            "journalctl exited 1: Failed to add filter for units: No data available",
            SourceError,
        ),
        (
            "unreadable",
            "journal not readable by this user: add it to the systemd-journal "
            "group or set JOURNAL_SUDO=true",
            SourceError,
        ),
    ],
    ids=[
        "host-key-mismatch",
        "host-not-in-known-hosts",
        "connection-refused",
        "auth-failed",
        "hang",
        "exit-1",
        "journal-unreadable",
    ],
)
async def test_a_failing_host_is_named_while_another_answers(
    tmp_path: Path,
    journal_file: Path,
    ssh_standin: SshStandin,
    fault: str,
    message: str,
    error_type: type[SourceError],
) -> None:
    """One host's failure is a named error for that host; the other's figures stand."""
    shared_key = None if fault == "auth" else ssh_standin.client_key
    async with SshStandin(
        tmp_path / "bad", {UNIT: journal_file}, client_key=shared_key
    ) as bad:
        trusted = bad.known_hosts_line()
        if fault == "host-key":
            stranger = asyncssh.generate_private_key("ssh-ed25519")
            key = stranger.export_public_key().decode().strip()
            trusted = f"[127.0.0.1]:{bad.port} {key}\n"
        if fault == "host-unknown":
            trusted = ""
        bad.fault = {
            "hang": Fault.HANG,
            "exit": Fault.EXIT_NONZERO,
            "unreadable": Fault.UNREADABLE,
        }.get(fault, Fault.NONE)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(ssh_standin.known_hosts_line() + trusted)
        port = _closed_port() if fault == "refused" else bad.port
        options = options_for(ssh_standin, known_hosts=known_hosts, command_timeout=0.5)

        result = await read_journal(
            [target_of(ssh_standin), JournalTarget("usage-bot", "127.0.0.1", port)],
            options,
            T0,
            at(60),
        )

    assert [(type(e), e.source, e.message) for e in result.errors] == [
        (error_type, f"127.0.0.1:{port}", message)
    ]
    assert [host.host for host in result.hosts] == [f"127.0.0.1:{ssh_standin.port}"]
    assert result.models[SONNET] == Counts(3, 401, 61)


async def test_silent_server_times_out_at_connect(
    tmp_path: Path, ssh_standin: SshStandin
) -> None:
    """A port that accepts but never speaks SSH is a timeout for that host."""

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await read_journal(
            [target_of(ssh_standin), JournalTarget("usage-bot", "127.0.0.1", port)],
            options_for(ssh_standin, connect_timeout=0.3),
            T0,
            at(60),
        )

    assert [(type(e), str(e)) for e in result.errors] == [
        (SourceTimeout, f"127.0.0.1:{port}: timed out")
    ]
    assert result.models[HAIKU] == Counts(2, 57, 6)


async def test_settings_point_at_the_standin(ssh_standin: SshStandin) -> None:
    """The stand-in's settings values drive the collector end to end."""
    settings = Settings(**ssh_standin.settings_values(), journal_sudo=True)

    result = await read_journal_from_settings(settings, T0, at(60), QueryKind.TOKENS)

    assert result.models[SONNET] == Counts(3, 401, 61)
    assert ssh_standin.commands[0].startswith("sudo -n journalctl -u ")


async def test_remote_file_stat(ssh_standin: SshStandin) -> None:
    """stat gives the file's mtime and mode, through the exact quoted command."""
    found = await stat_remote_file(
        target_of(ssh_standin), ENV_FILE, options_for(ssh_standin)
    )

    assert found == (at(30), 0o600)
    assert (found.mtime, found.mode) == (at(30), 0o600)
    assert ssh_standin.commands == [f"stat -c '%Y %a' {ENV_FILE}"]


async def test_missing_remote_file_is_a_named_error(ssh_standin: SshStandin) -> None:
    """A file stat cannot find is the host's error with stat's first line."""
    with pytest.raises(SourceError) as caught:
        await stat_remote_file(
            target_of(ssh_standin), "/opt/text/.env.old", options_for(ssh_standin)
        )

    assert caught.value.source == f"127.0.0.1:{ssh_standin.port}"
    assert caught.value.message == (
        "stat exited 1: stat: cannot statx '/opt/text/.env.old': "
        "No such file or directory"
    )


HOSTILE = ["1.1.1.1; rm -rf /", "$(id)", "x" * 10_000]
HOSTILE_IDS = ["shell-tail", "substitution", "huge"]


@pytest.mark.parametrize("hostile", HOSTILE, ids=HOSTILE_IDS)
async def test_hostile_host_never_reaches_a_shell(
    ssh_standin: SshStandin, hostile: str
) -> None:
    """A hostile host spec is refused before any connection is made."""
    settings = Settings(
        journal_hosts=[ssh_standin.target, f"usage-bot@{hostile}"],
        ssh_known_hosts=ssh_standin.known_hosts_path,
        ssh_key_path=ssh_standin.client_key_path,
    )

    with pytest.raises(ConfigError) as caught:
        await read_journal_from_settings(settings, T0, at(60))

    assert str(caught.value) == (
        "JOURNAL_HOSTS: journal host must be user@host[:port] with a plain host name "
        f"or address; got {f'usage-bot@{hostile}'[:40]!r}"
    )
    assert ssh_standin.commands == []


@pytest.mark.parametrize("hostile", HOSTILE, ids=HOSTILE_IDS)
async def test_hostile_path_never_reaches_a_shell(
    ssh_standin: SshStandin, hostile: str
) -> None:
    """A hostile remote path is refused before the command is sent."""
    with pytest.raises(InputError) as caught:
        await stat_remote_file(
            target_of(ssh_standin), f"/opt/{hostile}", options_for(ssh_standin)
        )

    assert str(caught.value).startswith("remote path must be absolute")
    assert ssh_standin.commands == []


@pytest.mark.parametrize("hostile", HOSTILE, ids=HOSTILE_IDS)
def test_hostile_unit_is_a_config_error(tmp_path: Path, hostile: str) -> None:
    """A unit name with shell syntax never becomes options."""
    with pytest.raises(ConfigError):
        SshOptions(known_hosts=tmp_path / "known_hosts", unit=hostile)


@pytest.mark.parametrize(
    ("spec", "target"),
    [
        ("ops@enter-services", JournalTarget("ops", "enter-services", 22)),
        ("ops@10.0.0.5:2222", JournalTarget("ops", "10.0.0.5", 2222)),
        ("ops@[2001:db8::1]:22", JournalTarget("ops", "2001:db8::1", 22)),
    ],
    ids=["name", "v4-port", "v6-bracketed"],
)
def test_target_specs_parse(spec: str, target: JournalTarget) -> None:
    """user@host[:port] in its accepted forms."""
    assert JournalTarget.parse(spec) == target


@pytest.mark.parametrize(
    "spec",
    ["enter-services", "ops@", "ops@host:0", "ops@host:99999", "a@b@c", "-oProxy@h"],
    ids=["no-user", "no-host", "port-zero", "port-high", "two-ats", "option-user"],
)
def test_bad_target_specs_are_refused(spec: str) -> None:
    """Anything but user@host[:port] is an InputError."""
    with pytest.raises(InputError):
        JournalTarget.parse(spec)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            "known_hosts",
            "SSH_KNOWN_HOSTS must name a readable known_hosts file; got {path!r} "
            "(No such file or directory)",
        ),
        (
            "client_key",
            "SSH_KEY_PATH must name a readable private key without a passphrase; "
            "got {path!r} (No such file or directory)",
        ),
    ],
    ids=["known-hosts", "client-key"],
)
async def test_a_missing_key_file_is_refused_before_any_host(
    tmp_path: Path, ssh_standin: SshStandin, field: str, message: str
) -> None:
    """A missing known_hosts or client key is one ConfigError, and no command runs."""
    missing = tmp_path / "nowhere"
    options = options_for(ssh_standin, **{field: missing})

    with pytest.raises(ConfigError) as caught:
        await read_journal([target_of(ssh_standin)], options, T0, at(60))

    assert str(caught.value) == message.format(path=str(missing))
    assert ssh_standin.commands == []


def test_host_keys_cannot_go_unverified() -> None:
    """Without a known_hosts file there are no options at all."""
    with pytest.raises(ConfigError) as caught:
        SshOptions.from_settings(Settings(ssh_known_hosts=None))

    assert str(caught.value) == (
        "SSH_KNOWN_HOSTS must name a known_hosts file: host keys are always "
        "verified; got nothing"
    )


async def test_standins_served_by_hand_share_one_key_and_known_hosts(
    tmp_path: Path, journal_file: Path
) -> None:
    """`python -m bot.standins.ssh --hosts 2`: one key and one known_hosts for both."""
    standins = await serve_by_hand(journal_file, UNIT, 2, tmp_path / "by-hand")
    try:
        exports = environment_lines(standins, UNIT, tmp_path / "by-hand")
        options = options_for(
            standins[0], known_hosts=tmp_path / "by-hand" / "known_hosts"
        )
        result = await read_journal(
            [target_of(s) for s in standins], options, T0, at(60)
        )
    finally:
        for standin in standins:
            await standin.stop()

    ports = [s.port for s in standins]
    assert exports.splitlines() == [
        f"export JOURNAL_HOSTS=usage-bot@127.0.0.1:{ports[0]},"
        f"usage-bot@127.0.0.1:{ports[1]}",
        f"export JOURNAL_UNIT={UNIT}",
        f"export SSH_KEY_PATH={tmp_path / 'by-hand' / 'host-1' / 'client_key'}",
        f"export SSH_KNOWN_HOSTS={tmp_path / 'by-hand' / 'known_hosts'}",
    ]
    assert result.errors == []
    assert [h.host for h in result.hosts] == [f"127.0.0.1:{p}" for p in ports]
    assert result.models[SONNET] == Counts(6, 802, 122)
