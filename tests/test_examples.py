"""Every `examples/*/Dreamfile` builds, at its smallest size (real SmolLM2 and MiniLM from their wheels, CPU), as
its README runs it: from a copy of the repository root with `dreammake -f examples/NAME/Dreamfile`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# online examples download from a Hub: `tests/test_hub_downloads.py` runs them against the local Hub server
ONLINE = ("online_",)
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/Dreamfile")
                  if not p.parent.name.startswith(ONLINE))
SMALLEST = {  # each example's own knobs, at their smallest (data files are already a few rows)
    "classifier_distillation": {"steps": 1},
    "dpo_alignment": {"steps": 1},
    "embedding_pairs": {"steps": 1, "n": 4},
    "instruction_tuning": {"steps": 1},
    "qa_augmentation": {},
    "self_rewarding": {"steps": 1, "rounds": 1},
}


def test_every_example_has_its_smallest_size() -> None:
    assert sorted(SMALLEST) == EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_builds(name: str, tmp_path: Path, smol_checkpoint: Path) -> None:
    shutil.copytree(REPO / "examples" / name, tmp_path / "examples" / name)
    config = [arg for key, value in SMALLEST[name].items() for arg in ("--config", f"{key}={value}")]
    result = subprocess.run([sys.executable, "-m", "dreammake", "-f", f"examples/{name}/Dreamfile", *config],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
