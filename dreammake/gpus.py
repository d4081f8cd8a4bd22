"""GPU detection without importing torch (a leaf module: executors, backends and trainers all ask it)."""

from __future__ import annotations

import functools
import itertools
import os


def detect_gpus() -> int:
    """How many GPUs this process may use (CUDA_VISIBLE_DEVICES, else nvidia-smi), without importing torch."""
    return len(visible_gpus())


@functools.lru_cache(maxsize=1)
def _visible() -> tuple[str, ...]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",")]
        return tuple(d for d in ids if d and d != "-1")
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return ()
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return tuple(str(i) for i in range(sum(1 for line in out.splitlines() if line.startswith("GPU "))))


def rescan() -> None:
    """Forget what was detected, so the next question looks again (after CUDA_VISIBLE_DEVICES changed)."""
    _visible.cache_clear()


def visible_gpus() -> list[str]:
    """The CUDA ids of the GPUs this process may use (CUDA_VISIBLE_DEVICES's entries, else 0..N-1 as nvidia-smi
    lists them), without importing torch; asked once."""
    return list(_visible())


def gpu_pool(count: int) -> list[str]:
    """`count` CUDA ids for the local executor to hand out: the visible ones first, then made-up further ids
    (`--resources gpus=N` above what is detected: a pool sized by hand, e.g. to test)."""
    ids = visible_gpus()[:count]
    made_up = (str(i) for i in itertools.count() if str(i) not in ids)
    return ids + list(itertools.islice(made_up, count - len(ids)))
