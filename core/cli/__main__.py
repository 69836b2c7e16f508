"""`python -m core.cli …` runs the CLI (the `recscope` console script)."""

import sys

from core.cli import main

sys.exit(main())
