"""The environment of worker processes that reload the Dreamfile (training and generation workers, Slurm jobs).

`--config` values travel in it, never in a file under `.dreammake/`: a value may be a credential
(`--config base=http://user:sk-…@host/v1`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

VARIABLE = "DREAMMAKE_CONFIG"


def with_config(env: Mapping[str, str], config: Mapping[str, Any] | None) -> dict[str, str]:
    """`env` plus the `--config` values a worker reloads the Dreamfile with."""
    return {**env, VARIABLE: json.dumps(dict(config or {}))}


def inherited_config() -> dict[str, Any]:
    """The `--config` values the coordinating process handed this worker (none when it handed none)."""
    return dict(json.loads(os.environ.get(VARIABLE) or "{}"))


def worker_env(config: Mapping[str, Any] | None) -> dict[str, str]:
    """Our environment with the `--config` values, this interpreter's import path (the Dreamfile's own modules
    import in the worker as here) and unbuffered output (its log follows it)."""
    env = with_config(os.environ, config)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def threads_each(processes: int) -> str:
    """`OMP_NUM_THREADS` for one of `processes` CPU workers sharing this process's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return str(max(1, cores // max(1, processes)))
