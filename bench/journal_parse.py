"""Journal parsing by hand: our parser against an awk pipeline, memory, SSH bytes.

Run with `.venv/bin/python bench/journal_parse.py`; it is not part of CI. Everything
it makes lives in a temporary folder; the SSH part talks only to the local stand-in.
"""

import asyncio
import random
import subprocess
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh

from bot.sources.journal import tally_lines
from bot.sources.records import Counts
from bot.sources.ssh import JournalTarget, SshOptions, read_journal
from bot.standins.ssh import (
    SshStandin,
    format_ip_log,
    format_other,
    format_token_usage,
)

UNIT = "text-pollinations.service"
START = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
MODELS = [
    "anthropic.claude-sonnet-4-v1:0",
    "anthropic.claude-3-5-haiku-v1:0",
    "amazon.nova-micro-v1:0",
    "amazon.nova-lite-v1:0",
    "meta.llama3-3-70b-instruct-v1:0",
    "mistral.mistral-large-2407-v1:0",
]
NOISE = [
    "POST /openai 200 812ms",
    "upstream bedrock latency=640ms retries=0",
    "cache miss for conversation prefix",
]
AWK = (
    "awk '/\\[TOKEN-USAGE\\]/ {"
    ' m=""; i=""; o="";'
    ' for (f = 1; f <= NF; f++) { split($f, kv, "=");'
    ' if (kv[1] == "model") m = kv[2];'
    " else if (kv[1] ~ /^input/) i = kv[2];"
    " else if (kv[1] ~ /^output/) o = kv[2] }"
    ' print m, i, o }\' "$JOURNAL"'
    " | awk '{ c[$1]++; i[$1] += $2; o[$1] += $3 }"
    " END { for (m in c) print m, c[m], i[m], o[m] }'"
)


def request_lines(rng: random.Random, n: int, ts: datetime) -> list[str]:
    """The two lines request `n` writes at `ts`."""
    model = rng.choice(MODELS)
    # Peers are Cloudflare edges: a few hundred addresses, whatever the traffic.
    peer = f"::ffff:172.69.{rng.randrange(2)}.{rng.randrange(256)}"
    return [
        format_ip_log(ts, peer, "/openai", "claude", f"sk_{n % 97:x}"),
        format_token_usage(ts, model, rng.randrange(20_000), rng.randrange(2_000)),
    ]


def write_mixed(path: Path, lines: int) -> None:
    """`lines` lines: requests (IP-LOG + TOKEN-USAGE) and one noise line in ten."""
    rng = random.Random(lines)
    span = timedelta(hours=1)
    with path.open("w", encoding="utf-8") as handle:
        written = 0
        while written < lines:
            if rng.random() < 0.1:
                handle.write(format_other(START + span * rng.random(), NOISE[0]) + "\n")
                written += 1
                continue
            ts = START + span * rng.random()
            for line in request_lines(rng, written, ts):
                handle.write(line + "\n")
            written += 2


def write_hour(path: Path, requests: int) -> None:
    """An hour in time order: each request logs IP-LOG, TOKEN-USAGE and 3 others."""
    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as handle:
        for n in range(requests):
            ts = START + timedelta(hours=1) * n / requests
            for line in request_lines(rng, n, ts):
                handle.write(line + "\n")
            for noise in NOISE:
                handle.write(format_other(ts, noise) + "\n")


def ours(path: Path) -> tuple[float, dict[str, Counts]]:
    started = time.perf_counter()
    with path.open(encoding="utf-8") as handle:
        tally = tally_lines(handle)
    return time.perf_counter() - started, tally.models


def awk(path: Path) -> tuple[float, dict[str, Counts]]:
    started = time.perf_counter()
    out = subprocess.run(
        ["sh", "-c", AWK],
        env={"JOURNAL": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.perf_counter() - started
    models = {}
    for row in out.splitlines():
        model, calls, tokens_in, tokens_out = row.split()
        models[model] = Counts(int(calls), int(tokens_in), int(tokens_out))
    return elapsed, models


def peak_memory(path: Path) -> int:
    tracemalloc.start()
    with path.open(encoding="utf-8") as handle:
        tally_lines(handle)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


async def ssh_bytes(workdir: Path, journal: Path) -> tuple[int, int, int, float]:
    async with SshStandin(workdir / "ssh", {UNIT: journal}) as standin:
        options = SshOptions(
            known_hosts=standin.known_hosts_path,
            client_key=standin.client_key_path,
            unit=UNIT,
            command_timeout=300.0,
        )
        target = JournalTarget.parse(standin.target)
        started = time.perf_counter()
        result = await read_journal(
            [target], options, START, START + timedelta(hours=1)
        )
        elapsed = time.perf_counter() - started
        filtered = standin.bytes_sent

        async with asyncssh.connect(
            "127.0.0.1",
            standin.port,
            username=standin.user,
            known_hosts=str(standin.known_hosts_path),
            client_keys=[str(standin.client_key_path)],
            agent_path=None,
            config=None,
        ) as conn:
            await conn.run(f"journalctl -u {UNIT} -o short-iso --no-pager", check=False)
        return filtered, standin.bytes_sent - filtered, result.hosts[0].lines, elapsed


def token_lines(source: Path, target: Path) -> int:
    """Keep the TOKEN-USAGE lines, as `journalctl --grep TOKEN-USAGE` would."""
    kept = 0
    with source.open(encoding="utf-8") as lines, target.open("w") as out:
        for line in lines:
            if "[TOKEN-USAGE]" in line:
                out.write(line)
                kept += 1
    return kept


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print("per model: calls and token sums (seconds; same = identical figures)")
        print(
            f"{'journal':>9} {'token lines':>11} {'awk':>6} {'ours':>6} same"
            f" {'ours, IPs too':>14}"
        )
        memory = {}
        for lines in (100_000, 1_000_000):
            mixed = workdir / f"journal-{lines}.log"
            write_mixed(mixed, lines)
            tokens = workdir / f"tokens-{lines}.log"
            kept = token_lines(mixed, tokens)
            awk_s, awk_models = awk(tokens)
            ours_s, ours_models = ours(tokens)
            full_s, full_models = ours(mixed)
            same = ours_models == awk_models == full_models == awk(mixed)[1]
            print(
                f"{lines:>9,} {kept:>11,} {awk_s:>6.2f} {ours_s:>6.2f} {same!s:>4}"
                f" {full_s:>14.2f}"
            )
            memory[lines] = peak_memory(mixed)

        print("\npeak traced memory of the parser over the mixed journal")
        for lines, peak in memory.items():
            print(f"{lines:>9,} lines: {peak / 1024:,.0f} KiB")

        hour = workdir / "hour.log"
        write_hour(hour, 20_000)
        filtered, unfiltered, received, elapsed = asyncio.run(ssh_bytes(workdir, hour))
        print("\nan hour (20,000 requests, 100,000 lines) over SSH via the stand-in")
        print(f"filtered (--grep):   {filtered:>12,} bytes, {received:,} lines")
        print(f"unfiltered:          {unfiltered:>12,} bytes")
        print(f"filtered collection: {elapsed:.2f} s end to end")


if __name__ == "__main__":
    main()
