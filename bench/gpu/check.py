"""The GPU figures of issue #14 in one run, each as a ratio against a plain baseline measured in the same run.

    python bench/gpu/check.py [--model FOLDER|ALIAS] [--out FILE] [--dry] [--only vllm,transformers,sft,shards]

(`bench/gpu/check.sh` calls it after installing what the GPU image lacks.) Parts:
  vllm          dreammake's vLLM backend vs vLLM's own `LLM.generate`: generated tokens/s, same prompts
                (skipped, with a line saying so, when vllm cannot be imported);
  transformers  the transformers backend vs a plain batched `model.generate` loop: tokens/s;
  sft           bf16 LoRA SFT through a Dreamfile (`rules.train_sft`) vs a plain TRL SFTTrainer script:
                training-loop tokens/s (`bench/train_overhead.py`'s two sides);
  shards        a prompt rule with `resources={"shards": 2}` (two replicas sharing the visible GPU) vs the
                same rule in one shard: end-to-end rows/s of a cold `dreammake` build ("not available" until
                dreammake has sharded generation).
Ratios are dreammake / baseline (shards: 2 shards / 1 shard); above 1 is faster. The table is printed and the
figures are written as JSON to `--out`, else to `$OUT/gpu-check.json` when OUT is set.

`--dry` runs every part at tiny sizes on the CPU (SmolLM2, a few rows, a few steps) so the script is exercised
without a GPU; its figures are printed too but measure nothing of interest.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PARTS = ("vllm", "transformers", "sft", "shards")
CHILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class Sizes:
    """How much each part does."""

    prompts: int  # vllm and transformers parts
    max_tokens: int
    batch: int  # the transformers backend's and the plain loop's batch size
    sft_steps: int
    sft_rows: int
    shard_rows: int


FULL = Sizes(prompts=512, max_tokens=128, batch=64, sft_steps=40, sft_rows=256, shard_rows=512)
DRY = Sizes(prompts=4, max_tokens=8, batch=4, sft_steps=2, sft_rows=8, shard_rows=4)


@dataclass
class Figure:
    """One part's outcome: both sides' figures and their ratio, or why there are none."""

    part: str
    what: str
    unit: str
    status: str = "ok"  # ok | skipped | not available | failed
    dreammake: float | None = None
    baseline: float | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """dreammake / baseline."""
        return self.dreammake / self.baseline if self.dreammake and self.baseline else None


def child(name: str, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run one workload of `workloads.py` in its own process; its RESULT line."""
    done = subprocess.run([sys.executable, str(HERE / "workloads.py"), name, json.dumps(args)], env=env,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{name} failed (exit {done.returncode}): {(done.stdout + done.stderr)[-1500:]}")


def part_vllm(model: str, sizes: Sizes, gpus: int, env: dict[str, str]) -> Figure:
    """dreammake's vLLM backend vs `LLM.generate`."""
    fig = Figure("vllm", "vLLM backend vs LLM.generate", "tokens/s")
    if importlib.util.find_spec("vllm") is None:
        fig.status, fig.note = "skipped", "skipped: vllm not installed"
        return fig
    args = {"model": model, "prompts": sizes.prompts, "max_tokens": sizes.max_tokens, "gpus": gpus}
    ours, plain = child("vllm_backend", args, env), child("vllm_plain", args, env)
    fig.dreammake, fig.baseline, fig.detail = ours["tokens_per_s"], plain["tokens_per_s"], {"backend": ours,
                                                                                          "plain": plain}
    return fig


def part_transformers(model: str, sizes: Sizes, gpus: int, env: dict[str, str]) -> Figure:
    """The transformers backend vs a plain `model.generate` loop."""
    args = {"model": model, "prompts": sizes.prompts, "max_tokens": sizes.max_tokens, "batch": sizes.batch,
            "gpus": gpus}
    got = child("transformers", args, env)
    return Figure("transformers", "transformers backend vs model.generate loop", "tokens/s",
                  dreammake=got["backend"]["tokens_per_s"], baseline=got["plain"]["tokens_per_s"],
                  note=f"{got['device']} {got['dtype']}, batch {sizes.batch}", detail=got)


def part_sft(model: str, sizes: Sizes, gpus: int, work: Path) -> Figure:
    """LoRA SFT through a Dreamfile vs a plain TRL script (bench/train_overhead.py's two sides)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = importlib.util.spec_from_file_location("train_overhead", ROOT / "bench" / "train_overhead.py")
    overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(overhead)
    device = "cuda" if gpus else "cpu"
    parquet = work / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(overhead.rows(sizes.sft_rows)), parquet)
    runs = {}
    for name, fn in (("dreammake", overhead.run_dreammake), ("plain", overhead.run_plain)):
        out = work / f"sft-{name}"
        out.mkdir()
        runs[name] = fn(model, str(parquet), str(out), sizes.sft_steps, device)
    if runs["dreammake"]["tokens"] != runs["plain"]["tokens"]:
        raise RuntimeError(f"the two sides trained on different token counts: {runs}")
    dtype = "bf16" if gpus else "fp32"
    return Figure("sft", f"{dtype} LoRA SFT via Dreamfile vs plain TRL", "tokens/s",
                  dreammake=runs["dreammake"]["tokens_per_second"], baseline=runs["plain"]["tokens_per_second"],
                  note=f"{sizes.sft_steps} steps, batch {overhead.SETTINGS['batch_size']}", detail=runs)


SHARD_DREAMFILE = """
rule("answers", input="q.parquet", output="a.parquet",
     run=rules.prompt(llm=llm({model!r}, batch_size={batch}), input_column="q", output_column="a",
                      max_tokens={max_tokens}, temperature=0),
     resources={resources!r})
"""


def timed_build(folder: Path, env: dict[str, str]) -> float:
    """Seconds of a cold `dreammake` build in `folder`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dreammake", "--quiet"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT_S)
    if done.returncode:
        raise RuntimeError((done.stdout + done.stderr)[-1500:])
    return time.perf_counter() - started


def part_shards(model: str, sizes: Sizes, work: Path, env: dict[str, str]) -> Figure:
    """A 2-shard prompt rule vs the same rule in 1 shard, both on the visible GPU (or the CPU)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fig = Figure("shards", "prompt rule, 2 shards vs 1 shard", "rows/s")
    from workloads import prompts

    table = pa.table({"q": prompts(sizes.shard_rows)})
    rates = {}
    for name, resources in (("2 shards", {"shards": 2}), ("1 shard", {})):
        folder = work / f"shards-{len(rates)}"
        folder.mkdir()
        pq.write_table(table, folder / "q.parquet")
        (folder / "Dreamfile").write_text(SHARD_DREAMFILE.format(
            model=model, batch=sizes.batch, max_tokens=sizes.max_tokens, resources=resources))
        rates[name] = sizes.shard_rows / timed_build(folder, env)
    fig.dreammake, fig.baseline, fig.detail = rates["2 shards"], rates["1 shard"], rates
    return fig


def table(figures: list[Figure]) -> str:
    """The figures as an aligned text table."""
    lines = [f"{'part':13} {'measured':46} {'dreammake':>12} {'baseline':>12} {'ratio':>7}  note"]
    for f in figures:
        if f.status != "ok":
            lines.append(f"{f.part:13} {f.what:46} {'':>12} {'':>12} {'':>7}  {f.note}")
            continue
        lines.append(f"{f.part:13} {f.what:46} {f.dreammake:12.1f} {f.baseline:12.1f} {f.ratio:7.3f}  {f.unit}"
                     f"{', ' + f.note if f.note else ''}")
    return "\n".join(lines)


def environment(model: str, gpus: int, dry: bool) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    return {"model": model, "dry": dry, "gpus": gpus, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if gpus else "cpu",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="a model folder, .gguf or alias")
    ap.add_argument("--out", help="the JSON file to write (default: $OUT/gpu-check.json when OUT is set)")
    ap.add_argument("--dry", action="store_true", help="tiny sizes on the CPU (checks the script, not speed)")
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    opts = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if opts.dry:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the children, the builds and the trainers see no GPU
    env = dict(os.environ)
    sys.path.insert(0, str(HERE))
    from dreammake.gpus import detect_gpus
    from dreammake.llm.models import checkpoint_for

    gpus = 0 if opts.dry else min(1, detect_gpus())
    sizes = DRY if opts.dry else FULL
    model = str(checkpoint_for(opts.model))  # a folder every side can load (a GGUF alias is converted once)
    work = Path(tempfile.mkdtemp(prefix="dm-gpu-check-"))
    runs = {"vllm": lambda: part_vllm(model, sizes, gpus, env),
            "transformers": lambda: part_transformers(model, sizes, gpus, env),
            "sft": lambda: part_sft(model, sizes, gpus, work),
            "shards": lambda: part_shards(model, sizes, work, env)}
    figures = []
    try:
        for name in opts.only.split(","):
            started = time.perf_counter()
            try:
                fig = runs[name]()
            except Exception as exc:  # one part's failure is reported; the others still run
                fig = Figure(name, name, "", status="failed", note="failed: " + " ".join(str(exc).split())[-300:])
            fig.detail["part_seconds"] = round(time.perf_counter() - started, 1)
            print(f"{name}: {fig.status} in {fig.detail['part_seconds']} s", flush=True)
            figures.append(fig)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(figures))
    out = opts.out or (os.path.join(os.environ["OUT"], "gpu-check.json") if os.environ.get("OUT") else None)
    if out:
        report = {"environment": environment(model, gpus, opts.dry), "sizes": asdict(sizes),
                  "figures": [asdict(f) | {"ratio": f.ratio} for f in figures]}
        Path(out).write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"wrote {out}")
    return 1 if any(f.status == "failed" for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
