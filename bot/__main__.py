"""`python -m bot` runs the same CLI as `usage-bot`."""

import sys

from bot.cli.main import main

# Guarded: worker processes that import this module must not run the CLI.
if __name__ == "__main__":
    sys.exit(main())
