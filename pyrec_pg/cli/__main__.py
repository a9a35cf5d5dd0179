"""`python -m pyrec_pg.cli`: the same as the `pyrec` command."""

from __future__ import annotations

import sys

from pyrec_pg.cli import main

sys.exit(main())
