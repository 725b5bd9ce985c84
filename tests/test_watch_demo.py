"""`usage-bot demo --watch`: the bypass starts and stops; one alert, one recovery."""

import asyncio
import os
import sys
from pathlib import Path

from bot.standins.scenario import ATTACKER_IP


async def test_the_watch_demo_alerts_once_with_the_attacker_and_recovers_once(
    tmp_path: Path,
) -> None:
    """Read off the terminal and the Slack stand-in's record: nothing else is said."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--watch", "--out", str(tmp_path),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)

    text = out.decode()
    assert process.returncode == 0, err.decode()[-2000:]
    steps = [line for line in text.splitlines() if " UTC  " in line]
    said = [line for line in steps if "evaluated: nothing to say" not in line]
    assert len(said) == 2
    assert (
        " alert in channel (+ coverage-claude-large.png): :rotating_light: "
        in (said[0])
    )
    assert said[0].endswith("claude-large: uncovered cost $7.25 is above $5.00")
    assert " recovery in thread: " in said[1]
    assert "The episode cost $38.58 in uncovered calls" in said[1]
    assert f"• `{ATTACKER_IP}`: 57 requests, claude-large" in text
    assert "*Uncovered so far*: 57 calls, $7.25" in text
    assert "Detection delay (first uncovered call to alert): 1.47 check intervals" in (
        text
    )
    assert "The Slack stand-in recorded 2 messages and 1 file:" in text
    chart = tmp_path / "watch-coverage-claude-large.png"
    assert chart.read_bytes().startswith(b"\x89PNG")
