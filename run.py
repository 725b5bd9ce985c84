#!/usr/bin/env python3
"""Set-up and entry point for newcomers: `python3 run.py demo` or `python3 run.py test`.

Needs only Python 3.11+ and pip. Creates `.venv` beside this file on first use,
installs the project into it (again whenever pyproject.toml changes), then runs
the demo on local stand-ins, or the checks and the test suite.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def ensure_venv() -> None:
    """Create the virtual environment and install the project if it changed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing usage-bot and its tools into .venv", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def run(*command: str) -> None:
    print("$", " ".join(command), file=sys.stderr, flush=True)
    status = subprocess.run(command, cwd=ROOT).returncode
    if status:
        sys.exit(status)


def main() -> None:
    what, rest = (sys.argv[1:2] or ["help"])[0], sys.argv[2:]
    if what not in ("demo", "test"):
        sys.exit(__doc__)

    ensure_venv()
    if what == "demo":
        os.execv(BIN / "usage-bot", [str(BIN / "usage-bot"), "demo", *rest])

    run(str(BIN / "ruff"), "format", "--check", "bot", "tests", "bench")
    run(str(BIN / "ruff"), "check", "bot", "tests", "bench")
    run(str(BIN / "mypy"))
    run(str(BIN / "python"), "-m", "pytest", *rest)


if __name__ == "__main__":
    main()
