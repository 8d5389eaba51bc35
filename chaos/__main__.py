"""`python -m chaos --help`: see chaos/run.py and docs/operations.md ("Chaos runs")."""

import sys

from .run import main

sys.exit(main())
