"""`coverage logs` and `ipcheck` as a person runs them: the CLI in its own process,
an SSH host given by the environment, the event store beside it."""

import asyncio
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest

from bot.cli import answers
from bot.config import Settings
from bot.errors import InputError
from bot.services import build_services
from bot.standins.ssh import (
    SshStandin,
    format_ip_log,
    format_other,
    format_token_usage,
    write_journal,
)
from bot.standins.tinybird import GatewayEvent, TinybirdStandIn

UNIT = "text-pollinations.service"
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"
NOVA = "amazon.nova-micro-v1:0"
EDGE = "172.69.59.125"  # a Cloudflare address: the gateway's way in
ATTACKER = "203.0.113.77"
# The journal is written relative to the real clock: the CLI runs in its own
# process, where time cannot be frozen.
NOW = datetime.now(UTC).replace(second=0, microsecond=0)

# What the journal and the gateway hold for Opus in the last hour, by hand.
JOURNAL_OPUS = {"invocations": 50, "input_tokens": 290_000, "output_tokens": 17_000}
GATEWAY_OPUS = {"invocations": 20, "input_tokens": 20_000, "output_tokens": 2_000}


def at(minutes_ago: int, second: int = 0) -> datetime:
    return NOW - timedelta(minutes=minutes_ago) + timedelta(seconds=second)


def journal() -> list[str]:
    """20 Opus and 10 Nova calls through the edge, 30 Opus calls from outside."""
    lines = []
    for i in range(20):
        lines.append(
            format_ip_log(at(40, i), f"::ffff:{EDGE}", "/openai", "opus", "pk7Q")
        )
        lines.append(format_token_usage(at(40, i), OPUS, 1_000, 100))
    for i in range(10):
        lines.append(
            format_ip_log(at(30, i), "::ffff:162.158.90.14", "/openai", "nova", "pk7Q")
        )
        lines.append(format_token_usage(at(30, i), NOVA, 50, 5))
    for i in range(30):
        lines.append(
            format_ip_log(
                at(20, i), f"::ffff:{ATTACKER}", "/openai", "claude-large", "pk7Q"
            )
        )
        lines.append(format_token_usage(at(20, i), OPUS, 9_000, 500))
    lines.append(format_other(at(10), "[TOKEN-USAGE] model=broken input=lots output=1"))
    lines.append(format_other(at(10), "[INFO] health check ok"))
    lines.append(format_token_usage(at(90), OPUS, 5, 5))  # before the window
    return sorted(lines)  # fmt: skip


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[SshStandin]:
    path = write_journal(tmp_path / "journal.log", journal())
    async with SshStandin(tmp_path / "ssh", {UNIT: path}) as standin:
        yield standin


@pytest.fixture
def gateway(tinybird: TinybirdStandIn) -> TinybirdStandIn:
    """The gateway logged its own 30 calls and nothing of the attacker's."""
    tinybird.insert_events(
        [GatewayEvent(at(40, i), OPUS, token_count_prompt_text=1_000,
                      token_count_completion_text=100) for i in range(20)]
        + [GatewayEvent(at(30, i), NOVA, token_count_prompt_text=50,
                        token_count_completion_text=5) for i in range(10)]
    )  # fmt: skip
    return tinybird


async def cli(
    host: SshStandin,
    tinybird: TinybirdStandIn,
    *args: str,
    hosts: str = "",
    database: str = "sqlite://",
) -> tuple[int, dict, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "JOURNAL_HOSTS": hosts or host.target,
        "JOURNAL_UNIT": UNIT,
        "SSH_KEY_PATH": str(host.client_key_path),
        "SSH_KNOWN_HOSTS": str(host.known_hosts_path),
        "TB_HOST": tinybird.url,
        "TB_TOKEN": tinybird.token,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "DATABASE_URL": database,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, json.loads(out or b"{}"), err.decode()


async def test_coverage_logs_reports_what_the_journal_holds(
    host: SshStandin, gateway: TinybirdStandIn
) -> None:
    status, doc, _ = await cli(host, gateway, "coverage", "logs", "1h")

    assert status == 0
    models = {m["provider_model_id"]: m for m in doc["models"]}
    assert models[OPUS]["logs"] == JOURNAL_OPUS
    assert models[OPUS]["gateway"] == GATEWAY_OPUS
    assert models[OPUS]["verdict"] == "gateway-missing-events"
    assert models[NOVA]["verdict"] == "consistent"
    (report,) = doc["hosts"]
    assert (report["host"], report["unparsed"]) == (f"127.0.0.1:{host.port}", 1)
    assert doc["errors"] == []


async def test_coverage_logs_with_the_gateway_down_still_shows_the_journal(
    host: SshStandin, gateway: TinybirdStandIn
) -> None:
    """A partial answer: the journal's figures, no verdict, and the failed source."""
    gateway.fail_next(500, times=10, error="backend exploded")

    status, doc, _ = await cli(host, gateway, "coverage", "logs", "1h")

    assert status == 1
    models = {m["provider_model_id"]: m for m in doc["models"]}
    assert set(models) == {OPUS, NOVA}
    assert models[OPUS]["logs"] == JOURNAL_OPUS
    assert models[NOVA]["logs"] == {
        "invocations": 10,
        "input_tokens": 500,
        "output_tokens": 50,
    }
    assert [m["gateway"] for m in models.values()] == [None, None]
    assert [m["verdict"] for m in models.values()] == ["no-data", "no-data"]
    assert [e["source"] for e in doc["errors"]] == ["tinybird"]


async def test_coverage_logs_with_the_host_down_still_shows_the_gateway(
    host: SshStandin, gateway: TinybirdStandIn
) -> None:
    """The gateway's figures stand alone when no journal host answers."""
    status, doc, _ = await cli(
        host, gateway, "coverage", "logs", "1h", hosts="usage-bot@127.0.0.1:9"
    )

    assert status == 1
    models = {m["provider_model_id"]: m for m in doc["models"]}
    assert models[OPUS]["gateway"] == GATEWAY_OPUS
    assert models[OPUS]["logs"] is None
    assert models[OPUS]["verdict"] == "no-data"
    assert models[NOVA]["gateway"]["invocations"] == 10
    assert doc["errors"][0]["source"] == "127.0.0.1:9"


async def test_ipcheck_puts_the_attacker_on_top(
    host: SshStandin, gateway: TinybirdStandIn
) -> None:
    status, doc, _ = await cli(host, gateway, "ipcheck", "1h")

    assert status == 0
    assert doc["total_requests"] == 60
    top, second, third = doc["ips"]
    assert top == {
        "ip": ATTACKER,
        "requests": 30,
        "expected_ingress": False,
        "models": {"claude-large": 30},
        "token_prefixes": {"pk7Q": 30},
        "paths": {"/openai": 30},
        "first_seen": at(20).isoformat(),
        "last_seen": at(20, 29).isoformat(),
    }
    assert (second["ip"], second["requests"], second["expected_ingress"]) == (
        EDGE,
        20,
        True,
    )
    assert third["ip"] == "162.158.90.14"


async def test_ipcheck_for_one_ip_validates_it_first(
    host: SshStandin, gateway: TinybirdStandIn
) -> None:
    status, doc, err = await cli(host, gateway, "ipcheck", "1.1.1.1;", "1h")

    assert status == 2
    assert doc == {}
    assert err.startswith("IP must be an IPv4 or IPv6 address like 203.0.113.9")
    assert host.commands == []


async def test_a_host_whose_key_does_not_match_is_refused(
    host: SshStandin, gateway: TinybirdStandIn
) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    key = impostor.export_public_key().decode().strip()
    host.known_hosts_path.write_text(f"[127.0.0.1]:{host.port} {key}\n")

    status, doc, _ = await cli(host, gateway, "ipcheck", "1h")

    assert status == 1
    assert doc["ips"] == []
    assert doc["errors"] == [
        {"source": f"127.0.0.1:{host.port}", "message": "host key mismatch"}
    ]
    assert host.commands == []


async def test_ipcheck_for_one_ip_gives_its_activity_per_period(
    host: SshStandin, gateway: TinybirdStandIn
) -> None:
    """The attacker's 30 requests land in the 5-minute period that holds them."""
    status, doc, _ = await cli(host, gateway, "ipcheck", f"::ffff:{ATTACKER}", "1h")

    assert status == 0
    assert doc["ip"] == ATTACKER
    assert [(s["ip"], s["requests"]) for s in doc["ips"]] == [(ATTACKER, 30)]
    busy = at(20).replace(minute=at(20).minute - at(20).minute % 5)
    assert [(p["start"], p["requests"]) for p in doc["series"] if p["requests"]] == [
        (busy.isoformat(), 30)
    ]
    assert len(doc["series"]) in (12, 13)


async def test_a_wrong_key_on_one_of_two_hosts_leaves_the_other_answering(
    tmp_path: Path, host: SshStandin, gateway: TinybirdStandIn
) -> None:
    """The impostor is named, the true host's figures stand, the exit status is 1."""
    path = write_journal(tmp_path / "other.log", journal())
    async with SshStandin(
        tmp_path / "other", {UNIT: path}, client_key=host.client_key
    ) as other:
        impostor = asyncssh.generate_private_key("ssh-ed25519")
        key = impostor.export_public_key().decode().strip()
        host.known_hosts_path.write_text(
            host.known_hosts_line() + f"[127.0.0.1]:{other.port} {key}\n"
        )
        hosts = f"{host.target},{other.target}"

        status, doc, _ = await cli(host, gateway, "coverage", "logs", "1h", hosts=hosts)

    assert status == 1
    models = {m["provider_model_id"]: m for m in doc["models"]}
    assert models[OPUS]["logs"]["invocations"] == 50
    assert [h["host"] for h in doc["hosts"]] == [f"127.0.0.1:{host.port}"]
    assert doc["errors"] == [
        {"source": f"127.0.0.1:{other.port}", "message": "host key mismatch"}
    ]
    assert other.commands == []


HOSTILE = ["1.1.1.1; rm -rf /", "$(id)", "x" * 10_000]


@pytest.mark.parametrize(
    "words",
    [
        *HOSTILE,
        *(f"{text} 1h" for text in HOSTILE),
        *(f"203.0.113.9 {text}" for text in HOSTILE),
        *(f"logs {text}" for text in HOSTILE),
    ],
    ids=[
        f"{where}-{name}"
        for where in ("ipcheck", "ipcheck-then-window", "ipcheck-window", "logs")
        for name in ("shell-tail", "substitution", "huge")
    ],
)
async def test_hostile_input_never_reaches_the_remote_command(
    host: SshStandin, gateway: TinybirdStandIn, words: str
) -> None:
    """Refused as input; the host then sees only the bot's own quoted command."""
    settings = Settings(**host.settings_values(), journal_unit=UNIT)
    services = build_services(settings)
    prepare = (
        answers.prepare_coverage
        if words.startswith("logs")
        else (answers.prepare_ipcheck)
    )

    with pytest.raises(InputError):
        prepare(words, services)
    answer = await answers.prepare_ipcheck("203.0.113.77 1h", services)()

    assert answer.doc["total_requests"] == 30
    (command,) = host.commands
    assert command.startswith(f"journalctl -u {UNIT} --since @")
    assert command.endswith(" --grep IP-LOG -o short-iso --no-pager")
    for part in ("rm -rf", "$(", "id)", "xxxx", ";"):
        assert part not in command


async def test_ipcheck_in_a_terminal_is_audited_with_the_user(
    tmp_path: Path, host: SshStandin, gateway: TinybirdStandIn
) -> None:
    """A terminal use leaves the audit line a Slack use would, naming the OS user."""
    database = f"sqlite:///{tmp_path / 'audit.db'}"

    status, _, _ = await cli(host, gateway, "ipcheck", "1h", database=database)

    store = await build_services(Settings(database_url=database)).store()
    (entry,) = await store.audit_entries()
    assert status == 0
    assert (entry.actor, entry.action, entry.target, entry.outcome) == (
        f"cli:{getpass.getuser()}",
        "/ipcheck",
        "1h",
        "allowed",
    )


async def test_a_model_the_catalog_lacks_is_asked_of_the_gateway_too(
    tmp_path: Path, tinybird: TinybirdStandIn
) -> None:
    """A journal model outside the catalog is compared, not taken for missing."""
    mistral = "mistral.mistral-large-2407-v1:0"
    lines = [format_token_usage(at(15, i), mistral, 200, 20) for i in range(10)]
    lines += [format_token_usage(at(15, i), NOVA, 50, 5) for i in range(4)]
    tinybird.insert_events(
        [GatewayEvent(at(15, i), mistral, token_count_prompt_text=200,
                      token_count_completion_text=20) for i in range(10)]
        + [GatewayEvent(at(15, i), NOVA, token_count_prompt_text=50,
                        token_count_completion_text=5) for i in range(3)]
    )  # fmt: skip
    path = write_journal(tmp_path / "journal.log", lines)
    async with SshStandin(tmp_path / "ssh", {UNIT: path}) as standin:
        settings = Settings(
            **standin.settings_values(),
            journal_unit=UNIT,
            tb_host=tinybird.url,
            tb_token=tinybird.token,
        )

        answer = await answers.prepare_coverage("logs 1h", build_services(settings))()

    found = {m["provider_model_id"]: m for m in answer.doc["models"]}
    assert found[mistral]["model"] is None
    assert (
        found[mistral]["gateway"]
        == found[mistral]["logs"]
        == {
            "invocations": 10,
            "input_tokens": 2_000,
            "output_tokens": 200,
        }
    )
    assert found[mistral]["verdict"] == "consistent"
    assert found[NOVA]["gateway"]["invocations"] == 3
    assert found[NOVA]["verdict"] == "gateway-missing-events"
    assert answer.doc["errors"] == []


async def test_ipcheck_in_a_terminal_is_not_run_unaudited(
    tmp_path: Path, host: SshStandin, gateway: TinybirdStandIn
) -> None:
    """Without an audit log to write to, the command is refused and no host asked."""
    database = f"sqlite:///{tmp_path / 'missing' / 'audit.db'}"

    status, doc, err = await cli(host, gateway, "ipcheck", "1h", database=database)

    assert (status, doc) == (2, {})
    assert err.startswith(
        "ipcheck not run: its use could not be written to the audit log "
        "(DATABASE_URL): (sqlite3.OperationalError) unable to open database file"
    )
    assert host.commands == []
