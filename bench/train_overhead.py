"""Overhead of run_training vs. a plain TRL script: the same LoRA SFT job on identical data and settings.

    python bench/train_overhead.py [--steps 8] [--repeats 2]

Both variants run in a fresh child process (run_training always does; the plain script is re-invoked with
``--plain``) and alternate A/B to spread machine noise. Reported: training-loop tokens/s (non-padding tokens /
trainer train_runtime, the same count for both) and end-to-end wall time (process start to finished output).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SETTINGS = {
    "lora": {"r": 8},
    "batch_size": 4,
    "max_length": 64,
    "learning_rate": 2e-4,
    "seed": 0,
    "save_steps": 10_000,
}


def rows(n: int) -> list[dict]:
    return [
        {
            "input": f"Question {i}: what is {i} plus {i}? Answer briefly.",
            "output": f"{i} plus {i} is {2 * i}.",
        }
        for i in range(n)
    ]


def plain_trl(base: str, parquet: str, out: str, steps: int) -> dict:
    """What a user would write by hand with TRL 1.x (no dreammake code involved)."""
    import pyarrow.parquet as pq
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(base)
    ds = Dataset(pq.read_table(parquet)).map(
        lambda r: {
            "prompt": [{"role": "user", "content": r["input"]}],
            "completion": [{"role": "assistant", "content": r["output"]}],
        },
        remove_columns=["input", "output"],
    )
    model = AutoModelForCausalLM.from_pretrained(base)
    args = SFTConfig(
        output_dir=os.path.join(out, "ckpt"),
        max_steps=steps,
        per_device_train_batch_size=SETTINGS["batch_size"],
        learning_rate=SETTINGS["learning_rate"],
        seed=SETTINGS["seed"],
        max_length=SETTINGS["max_length"],
        logging_steps=1,
        save_steps=SETTINGS["save_steps"],
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
    res = trainer.train()
    trainer.save_model(os.path.join(out, "final"))
    tokens = int(trainer.state.num_input_tokens_seen)
    runtime = float(res.metrics["train_runtime"])
    return {
        "tokens": tokens,
        "train_runtime": runtime,
        "tokens_per_second": tokens / runtime,
        "train_loss": trainer.state.log_history[-2].get("loss"),
        "setup_s": time.time() - t0 - runtime,
    }


def run_plain(base, parquet, out, steps) -> dict:
    t0 = time.time()
    res = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--plain", base, parquet, out, str(steps)],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS=str(len(os.sched_getaffinity(0)))),
    )
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-4000:])
    with open(os.path.join(out, "plain.json")) as fh:
        result = json.load(fh)
    result["wall_s"] = time.time() - t0
    return result


def run_dreammake(base, parquet, out, steps) -> dict:
    from dreammake.rules.train import run_training

    t0 = time.time()
    result = run_training(
        "sft",
        {"base": base, "max_steps": steps, **SETTINGS},
        {"train": parquet},
        os.path.join(out, "final"),
        os.path.join(out, "work"),
    )
    result["wall_s"] = time.time() - t0
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--plain":
        base, parquet, out, steps = sys.argv[2:6]
        result = plain_trl(base, parquet, out, int(steps))
        with open(os.path.join(out, "plain.json"), "w") as fh:
            json.dump(result, fh)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rows", type=int, default=64)
    opts = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from dreammake.llm.models import checkpoint_for

    base = str(checkpoint_for("smollm2-135m-instruct"))
    tmp = tempfile.mkdtemp(prefix="dm-bench-")
    parquet = os.path.join(tmp, "train.parquet")
    pq.write_table(pa.Table.from_pylist(rows(opts.rows)), parquet)
    results: dict[str, list[dict]] = {"dreammake": [], "plain_trl": []}
    try:
        for i in range(opts.repeats):
            order = [("dreammake", run_dreammake), ("plain_trl", run_plain)]
            if i % 2:
                order.reverse()
            for name, fn in order:
                out = os.path.join(tmp, f"{name}-{i}")
                os.makedirs(out)
                r = fn(base, parquet, out, opts.steps)
                results[name].append(r)
                print(
                    f"{name:10s} run {i}: {r['tokens']} tokens, {r['train_runtime']:.2f}s loop, "
                    f"{r['tokens_per_second']:.1f} tok/s, wall {r['wall_s']:.1f}s",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name, key):
        return statistics.median(r[key] for r in results[name])

    dm, pl = med("dreammake", "tokens_per_second"), med("plain_trl", "tokens_per_second")
    print(
        f"\ntokens/s (training loop, median of {opts.repeats}): dreammake {dm:.1f}  plain TRL {pl:.1f}  "
        f"ratio {dm / pl:.3f} (goal >= 0.95)"
    )
    dw, pw = med("dreammake", "wall_s"), med("plain_trl", "wall_s")
    print(
        f"end-to-end wall (median): dreammake {dw:.1f}s  plain TRL {pw:.1f}s  "
        f"end-to-end tokens/s ratio {pw / dw:.3f}"
    )


if __name__ == "__main__":
    main()
