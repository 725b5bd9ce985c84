"""`usage-bot usage` against moto's CloudWatch, through boto3 over HTTP."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from bot.cli.main import main
from bot.sources.records import Counts
from bot.standins.cloudwatch import CloudWatchStandin

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"
NOVA = "amazon.nova-micro-v1:0"
THIEF = "anthropic.claude-3-7-sonnet-20250219-v1:0"


@pytest.fixture
def billed(cloudwatch: CloudWatchStandin) -> CloudWatchStandin:
    """Three hours of known traffic, plus one model the catalog does not know."""
    rows = []
    for hours_ago in (1, 2, 3):
        stamp = NOW - timedelta(hours=hours_ago, minutes=-10)
        rows.append((OPUS, stamp, Counts(100, 200_000, 10_000, 5)))
        rows.append((NOVA, stamp, Counts(1_000, 50_000, 20_000, 0)))
    rows.append((THIEF, NOW - timedelta(hours=30), Counts(7, 7_000, 700, 0)))
    # Outside a 48h window: must not be counted.
    rows.append((OPUS, NOW - timedelta(hours=60), Counts(999, 1, 1, 1)))
    cloudwatch.put_counts(rows)
    return cloudwatch


def run_json(
    capsys: pytest.CaptureFixture[str], *args: str, tick: bool = False
) -> tuple[int, dict]:
    # boto3's adaptive retry mode refills its token bucket by the clock: tests of
    # throttling need a clock that moves.
    with time_machine.travel(NOW, tick=tick):
        status = main(["usage", *args, "--json"])
    return status, json.loads(capsys.readouterr().out)


def by_id(doc: dict) -> dict[str, dict]:
    return {m["provider_model_id"]: m for m in doc["models"]}


def test_all_48h_matches_cloudwatch_in_two_requests(
    billed: CloudWatchStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figures to the unit, unknown models included, one ListMetrics + one GMD."""
    status, doc = run_json(capsys, "all", "48h")

    assert status == 0
    assert billed.actions == ["ListMetrics", "GetMetricData"]
    models = by_id(doc)
    assert models[OPUS] == {
        "model": "claude-large",
        "provider": "bedrock",
        "provider_model_id": OPUS,
        "known": True,
        "invocations": 300,
        "input_tokens": 600_000,
        "output_tokens": 30_000,
        "throttles": 15,
        "throttle_share": 0.0476,  # 15 of 315 attempts
        "cost_usd": 3.75,
    }
    assert models[NOVA]["invocations"] == 3_000
    assert models[NOVA]["cost_usd"] == pytest.approx(0.01365)
    assert models[THIEF] == {
        "model": None,
        "provider": "bedrock",
        "provider_model_id": THIEF,
        "known": False,
        "invocations": 7,
        "input_tokens": 7_000,
        "output_tokens": 700,
        "throttles": 0,
        "throttle_share": 0.0,
        "cost_usd": None,
    }
    assert doc["total"]["invocations"] == 3_307
    assert doc["window"] == {
        "start": "2026-12-01T12:00:00+00:00",
        "end": "2026-12-03T12:00:00+00:00",
    }
    assert doc["errors"] == []


def test_one_model_asks_only_for_it(
    billed: CloudWatchStandin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A named model needs no discovery, and its chart is written with --plot."""
    chart = tmp_path / "opus.png"

    status, doc = run_json(capsys, "opus", "6h", "--plot", str(chart))

    assert status == 0
    assert billed.actions == ["GetMetricData"]
    assert [m["model"] for m in doc["models"]] == ["claude-large"]
    assert doc["models"][0]["invocations"] == 300
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_plot_without_a_chart_says_so(
    billed: CloudWatchStandin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`all` has no chart unless --hourly: say so rather than write nothing quietly."""
    chart = tmp_path / "all.png"

    with time_machine.travel(NOW, tick=False):
        status = main(["usage", "all", "6h", "--plot", str(chart)])

    assert status == 0
    assert not chart.exists()
    assert capsys.readouterr().err.splitlines()[-1] == (
        "no chart written: /usage draws one for a single model, or with --hourly"
    )


def test_hourly_charts_every_model(
    billed: CloudWatchStandin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chart = tmp_path / "all.png"

    status, _ = run_json(capsys, "all", "6h", "--hourly", "--plot", str(chart))

    assert status == 0
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["opus", "0h"], "window must be a number and a unit"),
        (["gpt-9"], "model must be one of: all, nova-fast"),
        (["opus", "1h", "extra"], "unexpected argument 'extra'"),
        (
            ["all", "456d"],
            "window must be a number and a unit: 30m, 1h, 48h, 7d, 2w, at most 455d",
        ),
    ],
    ids=["bad-window", "unknown-model", "extra-word", "beyond-retention"],
)
def test_bad_input_exits_2_without_calling_cloudwatch(
    cloudwatch: CloudWatchStandin,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    status = main(["usage", *args, "--json"])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.startswith(message)
    assert "Usage: `/usage [MODEL|all] [WINDOW]" in captured.err
    assert cloudwatch.requests == 0


def test_unreachable_cloudwatch_is_a_named_partial_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on the endpoint: exit 1, the source named, no traceback."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_TIMEOUT_SECONDS", "1")

    status, doc = run_json(capsys, "all", "1h")

    assert status == 1
    assert doc["models"] == []
    assert [e["source"] for e in doc["errors"]] == ["cloudwatch"]
    assert "Could not connect to the endpoint URL" in doc["errors"][0]["message"]


def test_a_cloudwatch_that_does_not_answer_in_time_is_named(
    billed: CloudWatchStandin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read timeout is ours, not boto3's 60 s: exit 1 with the source named."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_TIMEOUT_SECONDS", "0.2")
    billed.delay_seconds = 1.0

    status, doc = run_json(capsys, "opus", "6h")

    assert status == 1
    assert doc["models"] == []
    (error,) = doc["errors"]
    assert error["source"] == "cloudwatch"
    assert error["message"].startswith("no answer: Read timeout on endpoint URL")
    assert billed.actions == ["GetMetricData"]


def test_terminal_table(
    billed: CloudWatchStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    with time_machine.travel(NOW, tick=False):
        status = main(["usage", "all"])

    out = capsys.readouterr().out
    assert status == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:7]}
    assert rows["claude-large"] == ["300", "600.0k", "30.0k", "15", "(4.8%)", "$3.75"]
    assert f"unknown: {THIEF}" in out


def test_cloudwatch_throttling_is_retried_then_named(
    billed: CloudWatchStandin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two throttles are absorbed by the retry policy; a third attempt answers."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    billed.fail_next("Throttling", "Rate exceeded", times=2)

    status, doc = run_json(capsys, "opus", "6h", tick=True)

    assert status == 0
    assert billed.actions == ["GetMetricData"] * 3
    assert doc["models"][0]["invocations"] == 300


def test_cloudwatch_throttling_beyond_retries_is_a_partial_answer(
    billed: CloudWatchStandin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    billed.fail_next("Throttling", "Rate exceeded", times=2)

    status, doc = run_json(capsys, "opus", "6h", tick=True)

    assert status == 1
    assert doc["models"] == []
    assert doc["errors"] == [
        {"source": "cloudwatch", "message": "Throttling: Rate exceeded"}
    ]


def test_more_than_500_series_take_one_request_per_500(
    cloudwatch: CloudWatchStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    """130 unknown models and the catalog: 548 series, two GetMetricData requests."""
    thieves = [f"vendor.model-{i:03d}-v1:0" for i in range(130)]
    stamp = NOW - timedelta(hours=5)
    cloudwatch.put_counts(
        [(OPUS, stamp, Counts(1_000, 2_000_000, 100_000, 10))]
        + [
            (t, stamp, Counts(i + 1, 100 * (i + 1), 10, i % 2))
            for i, t in enumerate(thieves)
        ]
    )

    status, doc = run_json(capsys, "all", "48h")

    assert status == 0
    assert cloudwatch.actions == ["ListMetrics", "GetMetricData", "GetMetricData"]
    models = by_id(doc)
    assert len(models) == 7 + 130
    assert models[OPUS]["invocations"] == 1_000
    assert models[OPUS]["cost_usd"] == 12.5
    for i, thief in enumerate(thieves):
        assert models[thief]["known"] is False
        assert models[thief]["invocations"] == i + 1
        assert models[thief]["input_tokens"] == 100 * (i + 1)
        assert models[thief]["throttles"] == i % 2
    assert doc["total"]["invocations"] == 1_000 + sum(range(1, 131))


def test_the_console_script_finds_cloudwatch_by_aws_endpoint_url(
    cloudwatch: CloudWatchStandin,
) -> None:
    """As a newcomer runs it: `usage-bot usage all 48h --json`, in its own process."""
    now = datetime.now(UTC)
    cloudwatch.put_counts(
        [
            (OPUS, now - timedelta(hours=2), Counts(123, 456_789, 12_345, 6)),
            (THIEF, now - timedelta(hours=40), Counts(3, 3_000, 300, 0)),
        ]
    )
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ENDPOINT_URL": cloudwatch.url,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "DATABASE_URL": "sqlite://",
    }
    script = Path(sys.executable).with_name("usage-bot")

    done = subprocess.run(
        [str(script), "-v", "usage", "all", "48h", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    models = by_id(json.loads(done.stdout))  # stdout holds the document and no log
    assert (models[OPUS]["invocations"], models[OPUS]["input_tokens"]) == (123, 456_789)
    assert (models[OPUS]["output_tokens"], models[OPUS]["throttles"]) == (12_345, 6)
    assert models[OPUS]["cost_usd"] == 2.59257
    assert models[THIEF]["known"] is False
    assert models[THIEF]["invocations"] == 3
    assert cloudwatch.actions == ["ListMetrics", "GetMetricData"]
    assert "backend call" in done.stderr
