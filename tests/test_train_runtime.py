"""Process-level behaviour: SIGKILL + resume from the work_dir checkpoint, and 2-process (gloo) training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from dreammake.rules.train import run_training
from test_train_encoders import CLS_ROWS
from train_fixtures import write_parquet
from train_helpers import check_output


def _wait_for(predicate, timeout: float, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(0.02)
    return False


def test_sigkill_then_resume(tmp_path, minilm):
    train = write_parquet(tmp_path / "train.parquet", CLS_ROWS * 4)
    work, out = str(tmp_path / "work"), str(tmp_path / "out")
    options = {
        "base": minilm,
        "max_steps": 12,
        "batch_size": 4,
        "save_steps": 3,
        "max_length": 32,
        "learning_rate": 1e-4,
    }
    code = (
        "import json, sys\nfrom train import run_training\n"
        f"run_training('classifier', json.loads({json.dumps(json.dumps(options))}), "
        f"{{'train': {train!r}}}, {out!r}, {work!r})\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    caller = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    ckpts = os.path.join(work, "checkpoints")

    def first_checkpoint():
        return os.path.isdir(ckpts) and any(
            os.path.exists(os.path.join(ckpts, d, "trainer_state.json")) for d in os.listdir(ckpts)
        )

    try:
        assert _wait_for(first_checkpoint, 240, caller), "no checkpoint appeared"
        with open(os.path.join(work, "worker-0.pid")) as fh:
            worker_pid = int(fh.read())
        os.kill(worker_pid, signal.SIGKILL)
        assert caller.wait(60) != 0  # run_training raised TrainingError in the caller
    finally:
        if caller.poll() is None:
            caller.kill()
    assert not os.path.exists(os.path.join(out, ".dreammake-complete"))
    killed_at = max(int(d.split("-")[1]) for d in os.listdir(ckpts) if d.startswith("checkpoint-"))
    assert killed_at < 12

    log_path = os.path.join(work, "train_log.jsonl")
    with open(log_path) as fh:
        before = len(fh.readlines())
    result = run_training("classifier", options, {"train": train}, out, work)
    assert result["resumed_from_step"] >= 3
    assert result["steps"] == 12
    rows = check_output(out)
    assert rows[-1]["step"] == 12
    # The second run's first logged training step continues after the checkpoint (no restart at step 1).
    with open(log_path) as fh:
        records = [json.loads(line) for line in fh.readlines()[before:]]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps[0] == result["resumed_from_step"] + 1 and steps[-1] == 12


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
    assert os.path.exists(os.path.join(out, "adapter_model.safetensors"))
