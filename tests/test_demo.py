"""The demo end to end, as a new user runs it: `dreammake -f Dreamfile.example all` (at reduced size),
every target, card and the report exist; editing one prompt reruns only the jobs that depend on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--config", "n=4", "--config", "steps=2", "--config", "max_tokens=24"]


def dreammake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("dreammake", path=os.path.dirname(sys.executable)) or "dreammake"
    return subprocess.run([exe, "-f", "Dreamfile.example", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=1200)


def test_demo_runs_and_reruns_only_what_a_prompt_edit_touches(tmp_path, smol_checkpoint):
    shutil.copy(REPO / "Dreamfile.example", tmp_path / "Dreamfile.example")
    first = dreammake(tmp_path, "all", *SMALL)
    assert first.returncode == 0, first.stdout + first.stderr
    for path in ["targets/abstracts.parquet", "targets/tweets.parquet", "targets/splits/train.parquet",
                 "targets/splits/validation.parquet", "targets/tuned_tweets.parquet",
                 "models/tweet-model/adapter_config.json", "models/tweet-model/README.md",
                 "models/tweet-model/dreammake-card.json", "targets/tuned_tweets.README.md"]:
        assert (tmp_path / path).exists(), path
    card = (tmp_path / "models/tweet-model/README.md").read_text()
    assert "base_model" in card and "synthetic" in (tmp_path / "targets/tuned_tweets.README.md").read_text()
    report = dreammake(tmp_path, "report", "-o", "report.html", *SMALL)
    assert report.returncode == 0, report.stderr
    assert "<svg" in (tmp_path / "report.html").read_text()
    again = dreammake(tmp_path, "all", *SMALL)
    assert "everything is up to date" in again.stderr + again.stdout

    text = (tmp_path / "Dreamfile.example").read_text()
    (tmp_path / "Dreamfile.example").write_text(text.replace("a one-sentence tweet", "a short tweet"))
    plan = dreammake(tmp_path, "-n", "all", *SMALL).stdout
    jobs = {line.split("\t")[0]: line.split("\t")[2] for line in plan.splitlines() if line.count("\t") == 2}
    assert "abstracts" not in jobs
    assert jobs["tweets"].startswith("params")
    rerun = dreammake(tmp_path, "all", *SMALL)
    assert rerun.returncode == 0, rerun.stderr
    status = json.loads(dreammake(tmp_path, "status", "--json", *SMALL).stdout)["targets"]
    by_target = {t["target"]: t for t in status}
    assert all(t["state"] == "up-to-date" for t in status)
    assert by_target["targets/tweets.parquet"]["llm_calls"] == 4  # one new call per abstract
    assert by_target["targets/abstracts.parquet"]["llm_calls"] == 4  # built once, in the first run
