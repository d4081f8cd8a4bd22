"""GPU detection without importing torch (a leaf module: executors, backends and trainers all ask it)."""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def detect_gpus() -> int:
    """GPUs this process may use (CUDA_VISIBLE_DEVICES, else nvidia-smi), without importing torch; asked once."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))
