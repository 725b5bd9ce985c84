"""`usage-bot demo --rotation`: a new user's first look at a rotation, offline."""

import asyncio
import os
import re
import sys
from pathlib import Path


async def test_the_rotation_demo_carries_a_rotation_to_the_end(tmp_path: Path) -> None:
    """Both people, the restart, the refusals, three passed checks, the audit log."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--rotation",
        env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)

    text = out.decode()
    assert process.returncode == 0, err.decode()
    thread = [line[4:] for line in text.splitlines() if line.startswith("  ↳ ")]
    assert [re.sub(r"\. .*", ".", line) for line in thread] == [
        "<@UALICE> marked step 1 done",
        "<@UBOB> marked step 2 done",
        "<@UALICE> verified step 3: passed.",
        "<@UBOB> skipped step 4",
        "<@UBOB> verified step 5: passed.",
        "<@UBOB> marked step 6 done",
        "<@UBOB> marked step 7 done",
        "<@UALICE> verified step 8: passed.",
        "<@UALICE> closed this rotation as done",
    ]
    assert "— the bot restarts; what it knows is in the database —" in text
    assert (
        "(only <@UMALLORY> sees) Only the bot's admins (BOT_ADMINS) can do this; "
        "the attempt was logged." in text
    )
    assert (
        "(only <@UBOB> sees) rotation #1 is done; a closed rotation is read-only"
        in (text)
    )
    assert "(reply) No open rotations." in text
    audit = text.split("\nAudit log\n")[1].splitlines()[2:]
    assert [line.split()[2:5] for line in audit] == [
        ["UALICE", "rotation.start", "applied"],
        ["UALICE", "step.done", "applied"],
        ["UBOB", "step.done", "applied"],
        ["UALICE", "step.check", "applied"],
        ["UMALLORY", "step.done", "denied"],
        ["UBOB", "step.skip", "applied"],
        ["UBOB", "step.check", "applied"],
        ["UBOB", "step.done", "applied"],
        ["UBOB", "step.done", "applied"],
        ["UALICE", "step.check", "applied"],
        ["UALICE", "rotation.close", "applied"],
        ["UBOB", "step.undo", "rejected"],
    ]
