"""`--config` values for worker processes (training workers, Slurm jobs) travel in their environment, never in a
file under `.dreammake/`: a value may be a credential (`--config base=http://user:sk-…@host/v1`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

VARIABLE = "DREAMMAKE_CONFIG"


def with_config(env: Mapping[str, str], config: Mapping[str, Any] | None) -> dict[str, str]:
    """`env` plus the `--config` values a worker reloads the Dreamfile with."""
    return {**env, VARIABLE: json.dumps(dict(config or {}))}


def inherited_config() -> dict[str, Any]:
    """The `--config` values the coordinating process handed this worker (none when it handed none)."""
    return dict(json.loads(os.environ.get(VARIABLE) or "{}"))
