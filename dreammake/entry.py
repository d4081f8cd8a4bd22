"""The `dreammake` executable: a no-op check answered from the up-to-date record, else the full CLI."""

from __future__ import annotations

import os
import sys


def run() -> None:
    """Answer from `.dreammake/uptodate.marshal` when nothing it depends on moved (no CLI, Dreamfile or DuckDB
    is loaded then); otherwise run the command line in full (`dreammake.cli.run`)."""
    from dreammake.uptodate import quick_check

    code = quick_check(sys.argv[1:])
    if code is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    from dreammake.cli import run as full

    full()
