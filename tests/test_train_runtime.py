"""Process-level behaviour: SIGKILL + resume from the work_dir checkpoint, and 2-process (gloo) training."""

from __future__ import annotations

import glob
import json
import os
import signal
import time

from test_train_encoders import CLS_ROWS
from train_fixtures import write_parquet
from train_helpers import check_output

from dreammake.rules.train import run_training


def _wait_for(predicate, timeout: float, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(0.02)
    return False


def test_sigkill_then_resume(project, minilm):
    """A dreammake run is SIGKILLed after the trainer's first checkpoint; the rerun resumes from it."""
    write_parquet(project.root / "train.parquet", CLS_ROWS * 4)
    project.dreamfile("""
rule("clf", input={"train": "train.parquet"}, output="models/clf/",
     run=rules.train_classifier(base="all-minilm-l6-v2", max_steps=12, batch_size=4, save_steps=3,
                                max_length=32, learning_rate=1e-4))
""")
    proc = project.spawn(start_new_session=True)

    def checkpoints() -> list[str]:
        return glob.glob(str(project.root / ".dreammake/work/clf-*/checkpoints/checkpoint-*/trainer_state.json"))

    deadline = time.time() + 300
    while not checkpoints():
        assert time.time() < deadline and proc.poll() is None, "no checkpoint appeared"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator dies; its trainer follows (parent-death signal)
    proc.wait()
    assert not (project.root / "models/clf").exists()
    killed_at = max(int(p.split("checkpoint-")[1].split("/")[0]) for p in checkpoints())
    assert killed_at < 12
    project.run()
    stats = json.loads(project.run("status", "--json"))["targets"][0]
    assert stats["train_resumed_from_step"] >= 3
    assert stats["train_steps"] == 12
    rows = check_output(str(project.root / "models/clf"))
    assert rows[-1]["step"] == 12
    assert not glob.glob(str(project.root / ".dreammake/work/clf-*")), "the work folder goes after success"


def test_two_process_gloo_sft(tmp_path, smollm2):
    rows = [{"input": f"Say the secret word ({i})", "output": "banana"} for i in range(8)]
    train = write_parquet(tmp_path / "train.parquet", rows)
    out, work = str(tmp_path / "out"), str(tmp_path / "work")
    result = run_training(
        "sft",
        {
            "base": smollm2,
            "lora": {"r": 4},
            "max_steps": 3,
            "batch_size": 2,
            "max_length": 48,
            "learning_rate": 2e-3,
            "save_steps": 1000,
        },
        {"train": train},
        out,
        work,
        processes=2,
    )
    assert result["world_size"] == 2 and result["steps"] == 3
    assert os.path.exists(os.path.join(work, "worker-1.pid"))
    rows_m = check_output(out)
    assert len([r for r in rows_m if r["train_loss"] is not None]) == 3
    with open(os.path.join(out, "training_args.json")) as fh:
        args = json.load(fh)["trainer_args"]
    assert args["per_device_train_batch_size"] == 1  # batch_size=2 is the global batch, split over 2 processes
    assert os.path.exists(os.path.join(out, "adapter_model.safetensors"))


def test_coordinator_does_not_import_torch(tmp_path):
    """dreammake only launches training; torch, transformers and TRL load in the worker processes."""
    import subprocess
    import sys

    code = ("import sys, dreammake.rules.train, dreammake.rules.trainers; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))")
    # run outside the checkout: what is tested is the installed package
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_config_reaches_training_workers_by_environment_not_by_file():
    """A `--config` value may be a credential: the worker spec never holds it, the worker's environment does."""
    from dreammake.config_env import VARIABLE
    from dreammake.rules.train.api import _reward_fn_ref, worker_env

    def reward(completions, **columns):
        return [0.0 for _ in completions]

    reward.__module__ = "__dreamfile__"
    ref = _reward_fn_ref(reward, {"path": "Dreamfile", "config": {"base": "http://u:sk-secret-123456@h/v1"}})
    assert "sk-secret" not in str(ref)
    env = worker_env(1, 0, {"base": "http://u:sk-secret-123456@h/v1"})
    assert "sk-secret-123456" in env[VARIABLE]
