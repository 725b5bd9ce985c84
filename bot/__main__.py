"""`python -m bot` runs the same CLI as `usage-bot`."""

import sys

from bot.cli.main import main

sys.exit(main())
