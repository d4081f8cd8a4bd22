"""JSON files that processes hand each other (Slurm job specs and results, generation request batches): written
atomically, so a reader on any node sees a whole file or none."""

from __future__ import annotations

import json
import os
import threading
from typing import Any


def write_json(path: str, data: Any) -> None:
    """Write JSON atomically (a temp file beside it, then a rename)."""
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(tmp, "w") as f:
        json.dump(data, f, ensure_ascii=False, default=str)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    """The JSON in `path`, or None when it is missing or not whole."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
