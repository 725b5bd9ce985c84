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

from bot.sources.journal import ChunkedLines, JournalTally
from bot.sources.records import Counts
from bot.sources.ssh import JournalTarget, QueryKind, SshOptions, read_journal
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
# The hand-made pipelines the bot replaces: per-model sums, and requests per IP.
AWK_MODELS = (
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
# /ipcheck by hand: per IP the requests, first and last seen, models, paths, tokens.
AWK_IPS = """
awk '/\\[IP-LOG\\]/ { ip = ""; p = ""; m = ""; t = "";
  at = index($0, "[IP-LOG] [") + 10; ts = substr($0, at, 19);
  for (f = 1; f <= NF; f++) { eq = index($f, "="); if (eq == 0) continue;
    k = substr($f, 1, eq - 1); v = substr($f, eq + 1);
    if (k == "IP") ip = v; else if (k == "path") p = v;
    else if (k == "model") m = v; else if (k == "token") t = substr(v, 1, 4) }
  sub(/^::ffff:/, "", ip); print ip, ts, p, m, t }' "$JOURNAL" \\
| awk '{ c[$1]++; pm[$1 " model " $4]++; pp[$1 " path " $3]++;
  if ($5 != "") pt[$1 " token " $5]++;
  if (!($1 in first) || $2 < first[$1]) first[$1] = $2;
  if ($2 > last[$1]) last[$1] = $2 }
  END { for (ip in c) print ip, "requests", c[ip], first[ip], last[ip];
    for (k in pm) print k, pm[k]; for (k in pp) print k, pp[k];
    for (k in pt) print k, pt[k] }'
"""
CHUNK_BYTES = 256 * 1024
RUNS = 3


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


def stream(path: Path) -> JournalTally:
    """The collector's own path: bytes in channel-sized chunks, cut into lines."""
    tally = JournalTally()
    lines = ChunkedLines(tally)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            lines.feed(chunk)
    lines.close()
    return tally


def ours(path: Path) -> tuple[float, JournalTally]:
    """Best of RUNS wall times of `stream`, and its tally."""
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        tally = stream(path)
        best = min(best, time.perf_counter() - started)
    return best, tally


def awk(pipeline: str, path: Path) -> tuple[float, list[list[str]]]:
    """Best of RUNS wall times of the awk pipeline, and its rows."""
    best = float("inf")
    out = ""
    for _ in range(RUNS):
        started = time.perf_counter()
        out = subprocess.run(
            ["sh", "-c", pipeline],
            env={"JOURNAL": str(path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        best = min(best, time.perf_counter() - started)
    return best, [row.split() for row in out.splitlines()]


def peak_memory(path: Path) -> int:
    tracemalloc.start()
    stream(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def standin_options(standin: SshStandin, timeout: float) -> SshOptions:
    """The collector's options for the stand-in, with a bench-sized timeout."""
    return SshOptions(
        known_hosts=standin.known_hosts_path,
        client_key=standin.client_key_path,
        unit=UNIT,
        command_timeout=timeout,
    )


async def ssh_bytes(workdir: Path, journal: Path) -> tuple[int, int, int, float]:
    async with SshStandin(workdir / "ssh", {UNIT: journal}) as standin:
        options = standin_options(standin, timeout=300.0)
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


async def ssh_peak(workdir: Path, journal: Path) -> tuple[int, int, float]:
    """Peak traced memory of one whole collection over SSH, the stand-in included."""
    async with SshStandin(workdir / f"ssh-{journal.stem}", {UNIT: journal}) as standin:
        options = standin_options(standin, timeout=600.0)
        target = JournalTarget.parse(standin.target)
        started = time.perf_counter()
        tracemalloc.start()
        result = await read_journal(
            [target], options, START, START + timedelta(hours=1), QueryKind.TOKENS
        )
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, result.hosts[0].bytes_received, time.perf_counter() - started


def keep(source: Path, target: Path, tag: str, lines: int) -> None:
    """The first `lines` lines with `tag`, as `journalctl --grep` would send them."""
    kept = 0
    with source.open(encoding="utf-8") as found, target.open("w") as out:
        for line in found:
            if tag in line:
                out.write(line)
                kept += 1
                if kept == lines:
                    return
    raise ValueError(f"{source} has only {kept} lines with {tag}")


def compare_models(path: Path) -> tuple[float, float, bool]:
    awk_s, rows = awk(AWK_MODELS, path)
    ours_s, tally = ours(path)
    by_awk = {m: Counts(int(c), int(i), int(o)) for m, c, i, o in rows}
    return awk_s, ours_s, by_awk == tally.models


def compare_ips(path: Path) -> tuple[float, float, bool]:
    awk_s, rows = awk(AWK_IPS, path)
    ours_s, tally = ours(path)
    by_awk = sorted(tuple(row) for row in rows)
    by_ours = []
    for ip, found in tally.ips.by_ip.items():
        assert found.first_seen is not None and found.last_seen is not None
        first, last = (
            t.strftime("%Y-%m-%dT%H:%M:%S") for t in (found.first_seen, found.last_seen)
        )
        by_ours.append((ip, "requests", str(found.requests), first, last))
        for kind, counts in (
            ("model", found.models),
            ("path", found.paths),
            ("token", found.token_prefixes),
        ):
            by_ours += [(ip, kind, key, str(n)) for key, n in counts.items()]
    return awk_s, ours_s, by_awk == sorted(by_ours)


def main() -> None:
    sizes = (100_000, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mixed = workdir / "journal.log"
        write_mixed(mixed, 2 * max(sizes) + max(sizes) // 2)
        memory: dict[tuple[str, int], int] = {}
        print(f"best of {RUNS} wall times, seconds; same = identical figures")
        print(f"{'what':<26} {'lines':>9} {'awk':>6} {'ours':>6} {'x':>5} same")
        for label, tag, compare in (
            ("per model (coverage logs)", "[TOKEN-USAGE]", compare_models),
            ("per IP (ipcheck)", "[IP-LOG]", compare_ips),
        ):
            for lines in sizes:
                path = workdir / f"{tag.strip('[]')}-{lines}.log"
                keep(mixed, path, tag, lines)
                awk_s, ours_s, same = compare(path)
                print(
                    f"{label:<26} {lines:>9,} {awk_s:>6.2f} {ours_s:>6.2f}"
                    f" {awk_s / ours_s:>5.2f} {same}"
                )
                memory[(label, lines)] = peak_memory(path)

        print("\npeak traced memory of the streaming parser")
        for (label, lines), peak in memory.items():
            print(f"{label:<26} {lines:>9,} lines: {peak / 1024:>7,.0f} KiB")

        print("\npeak traced memory of a whole collection over SSH (stand-in too)")
        for lines in sizes:
            path = workdir / f"TOKEN-USAGE-{lines}.log"
            peak, received, elapsed = asyncio.run(ssh_peak(workdir, path))
            print(
                f"{lines:>9,} token lines: {peak / 1024:>7,.0f} KiB for"
                f" {received / 1e6:,.1f} MB received in {elapsed:.1f} s"
            )

        hour = workdir / "hour.log"
        write_hour(hour, 20_000)
        filtered, unfiltered, received, elapsed = asyncio.run(ssh_bytes(workdir, hour))
        print("\nan hour (20,000 requests, 100,000 lines) over SSH via the stand-in")
        print(f"filtered (--grep):   {filtered:>12,} bytes, {received:,} lines")
        print(f"unfiltered:          {unfiltered:>12,} bytes")
        print(f"filtered collection: {elapsed:.2f} s end to end")


if __name__ == "__main__":
    main()
