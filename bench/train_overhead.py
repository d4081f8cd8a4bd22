"""Training overhead: the same LoRA SFT job run by `dreammake` (a Dreamfile rule) and by a plain TRL script.

    python bench/train_overhead.py [--steps 10] [--repeats 3] [--rows 64] [--base FOLDER]

Each run is a fresh process on identical data and settings: `dreammake` builds a one-rule Dreamfile
(`rules.train_sft`) in a new project folder, so it pays for everything a first build does (start-up,
fingerprints, the worker process, the checkpoint folder, cards); the plain script is this file re-invoked
with `--plain` and is what a user would write with TRL by hand. Runs alternate A/B to spread machine
noise. Printed per run and as medians: training-loop tokens/s (non-padding tokens / the trainer's
train_runtime; dreammake's figure is read from the checkpoint's training_args.json) and end-to-end wall
time; then the ratio dreammake / plain for both, as the median of the A/B pairs' ratios.

On a GPU (`--device cuda`) both train in bf16.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": str(len(os.sched_getaffinity(0)))}  # the same threads for both
SETTINGS = {"batch_size": 4, "max_length": 64, "learning_rate": 2e-4, "seed": 0, "lora_r": 8}

DREAMFILE = """
rule("sft", input="train.parquet", output="models/sft/",
     run=rules.train_sft(base={base!r}, input_column="input", output_column="output", lora={{"r": {lora_r}}},
                         max_steps={steps}, batch_size={batch_size}, max_length={max_length},
                         learning_rate={learning_rate}, seed={seed}, dtype={dtype!r}),
     resources={{"gpus": {gpus}}})
"""


def rows(n: int) -> list[dict]:
    return [{"input": f"Question {i}: what is {i} plus {i}? Answer briefly.", "output": f"{i} plus {i} is {2 * i}."}
            for i in range(n)]


def plain_trl(base: str, parquet: str, out: str, steps: int, device: str) -> dict:
    """What a user would write by hand with TRL 1.x (no dreammake code involved)."""
    import pyarrow.parquet as pq
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    gpu = device == "cuda"
    tok = AutoTokenizer.from_pretrained(base)
    ds = Dataset(pq.read_table(parquet)).map(
        lambda r: {"prompt": [{"role": "user", "content": r["input"]}],
                   "completion": [{"role": "assistant", "content": r["output"]}]},
        remove_columns=["input", "output"])
    model = AutoModelForCausalLM.from_pretrained(base, dtype="bfloat16" if gpu else "float32")
    args = SFTConfig(output_dir=os.path.join(out, "ckpt"), max_steps=steps,
                     per_device_train_batch_size=SETTINGS["batch_size"], learning_rate=SETTINGS["learning_rate"],
                     seed=SETTINGS["seed"], max_length=SETTINGS["max_length"], logging_steps=1, save_steps=10_000,
                     report_to="none", bf16=gpu, use_cpu=not gpu, include_num_input_tokens_seen="non_padding",
                     disable_tqdm=True, dataloader_num_workers=0,
                     gradient_checkpointing=False)  # TRL turns it on by default; dreammake leaves it off
    r = SETTINGS["lora_r"]
    lora = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
    result = trainer.train()
    trainer.save_model(os.path.join(out, "final"))
    tokens = int(trainer.state.num_input_tokens_seen)
    runtime = float(result.metrics["train_runtime"])
    return {"tokens": tokens, "train_runtime": runtime, "tokens_per_second": tokens / runtime}


def run_plain(base: str, parquet: str, out: str, steps: int, device: str) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--plain", base, parquet, out, str(steps),
                           device], capture_output=True, text=True, env=CHILD_ENV)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    with open(os.path.join(out, "plain.json")) as fh:
        return {**json.load(fh), "wall_s": wall}


def run_dreammake(base: str, parquet: str, out: str, steps: int, device: str) -> dict:
    shutil.copy(parquet, os.path.join(out, "train.parquet"))
    gpu = device == "cuda"
    with open(os.path.join(out, "Dreamfile"), "w") as fh:
        fh.write(DREAMFILE.format(base=base, steps=steps, dtype="bfloat16" if gpu else "float32",
                                  gpus=1 if gpu else 0, **SETTINGS))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dreammake", "--quiet"], cwd=out, capture_output=True, text=True,
                          env=CHILD_ENV)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-4000:])
    with open(os.path.join(out, "models", "sft", "training_args.json")) as fh:
        summary = json.load(fh)["summary"]
    return {"tokens": summary["tokens"], "train_runtime": summary["train_runtime"],
            "tokens_per_second": summary["tokens_per_second"], "wall_s": wall}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--plain":
        base, parquet, out, steps, device = sys.argv[2:7]
        result = plain_trl(base, parquet, out, int(steps), device)
        with open(os.path.join(out, "plain.json"), "w") as fh:
            json.dump(result, fh)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--base", help="a model folder (default: SmolLM2-135M-Instruct, converted from its GGUF)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    opts = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    if opts.base:
        base = os.path.abspath(opts.base)
    else:
        from dreammake.llm.models import checkpoint_for

        base = str(checkpoint_for("smollm2-135m-instruct"))
    tmp = tempfile.mkdtemp(prefix="dm-bench-train-")
    parquet = os.path.join(tmp, "data.parquet")
    pq.write_table(pa.Table.from_pylist(rows(opts.rows)), parquet)
    results: dict[str, list[dict]] = {"dreammake": [], "plain TRL": []}
    try:
        for i in range(opts.repeats):
            order = [("dreammake", run_dreammake), ("plain TRL", run_plain)]
            if i % 2:
                order.reverse()
            for name, fn in order:
                out = os.path.join(tmp, f"{name.replace(' ', '_')}-{i}")
                os.makedirs(out)
                r = fn(base, parquet, out, opts.steps, opts.device)
                results[name].append(r)
                print(f"{name:10s} run {i}: {r['tokens']} tokens, loop {r['train_runtime']:.2f} s, "
                      f"{r['tokens_per_second']:.1f} tok/s, wall {r['wall_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    dm, plain = results["dreammake"], results["plain TRL"]
    assert all(a["tokens"] == b["tokens"] for a, b in zip(dm, plain)), "the two ran on different token counts"

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    loop_ratio = statistics.median(a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(dm, plain))
    wall_ratio = statistics.median(b["wall_s"] / a["wall_s"] for a, b in zip(dm, plain))
    print(f"\ntraining-loop tokens/s (median of {opts.repeats}): dreammake {median(dm, 'tokens_per_second'):.1f}"
          f"  plain TRL {median(plain, 'tokens_per_second'):.1f}  ratio {loop_ratio:.3f} (goal >= 0.95)")
    print(f"end-to-end wall (median): dreammake {median(dm, 'wall_s'):.1f} s  plain TRL {median(plain, 'wall_s'):.1f} s"
          f"  end-to-end tokens/s ratio {wall_ratio:.3f}")


if __name__ == "__main__":
    main()
