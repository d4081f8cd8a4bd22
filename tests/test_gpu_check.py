"""`bench/gpu/check.sh --dry`: every part of the GPU check runs at tiny sizes on the CPU, so it does not rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu-check.json"
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu" / "check.sh"), "--dry", "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**{k: v for k, v in os.environ.items() if k != "OUT"}, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    figures = {f["part"]: f for f in report["figures"]}
    assert list(figures) == ["vllm", "transformers", "sft", "shards"]
    assert report["environment"]["dry"] is True and report["environment"]["device"] == "cpu"
    for part in ("transformers", "sft"):
        assert figures[part]["status"] == "ok", figures[part]
        assert figures[part]["dreammake"] > 0 and figures[part]["baseline"] > 0 and figures[part]["ratio"] > 0
    assert figures["vllm"]["status"] in ("ok", "skipped")
    if figures["vllm"]["status"] == "skipped":
        assert "skipped: vllm not installed" in done.stdout
    assert figures["shards"]["status"] == "ok"
    table = done.stdout[done.stdout.index("part "):]
    assert "transformers backend vs model.generate loop" in table and "LoRA SFT via Dreamfile" in table

