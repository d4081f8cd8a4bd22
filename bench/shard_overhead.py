"""Generation in workers: what sending a prompt rule's misses to worker processes costs, and what shards buy.

For each shape it times a cold `dreammake` build (a fresh project each time) of a prompt rule over N rows with a
local stand-in model (`LocalInstant`: `--delay` seconds of sleep per row, like a model's compute), as
  in-process  — the baseline: generation in the coordinating process,
  1 worker    — the same rule given one (made-up) GPU, so its generation goes to one worker process,
  2 shards    — `shards=2`: two worker processes,
and prints each as a ratio to the in-process time of the same shape. Shapes: one chunk of N rows, and the
awkward one, many small chunks (`chunk_rows=`), where every chunk is a request batch the workers wait for.

    python bench/shard_overhead.py [--rows 4000] [--delay 0.001] [--chunk 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

INCLUDE = f"include({os.path.join(os.path.dirname(os.path.abspath(__file__)), 'instant_backend.py')!r})\n"
DREAMFILE = '''
def questions():
    return {{"q": [f"question {{i}}" for i in range({rows})]}}

rule("questions", output="src/q.parquet", run=questions)
rule("answers", input="src/q.parquet", output="out/a.parquet", {placement}
     run=rules.prompt(llm=llm(LocalInstant(delay={delay})), input_column="q", output_column="a",
                      chunk_rows={chunk}))
'''
MODES = {
    "in-process": ("", []),
    "1 worker": ('resources={"gpus": 1},', ["--resources", "gpus=1"]),
    "2 shards": ("shards=2,", []),
}


def cold_build(rows: int, delay: float, chunk: int, mode: str) -> float:
    placement, flags = MODES[mode]
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "Dreamfile"), "w") as f:
            f.write(INCLUDE + DREAMFILE.format(rows=rows, delay=delay, chunk=chunk, placement=placement))
        subprocess.run([sys.executable, "-m", "dreammake", "--quiet", "src/q.parquet"], cwd=root, check=True)
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "dreammake", "--quiet", *flags, "out/a.parquet"], cwd=root,
                             capture_output=True, text=True)
        took = time.perf_counter() - started
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--delay", type=float, default=0.001, help="seconds of model time per row")
    parser.add_argument("--chunk", type=int, default=200, help="chunk_rows of the awkward shape")
    args = parser.parse_args()
    print(f"{args.rows} rows, {args.delay * 1000:g} ms per row; cold builds, ratio = time / in-process time")
    print(f"{'shape':<22}{'mode':<12}{'seconds':>9}{'ratio':>8}")
    for shape, chunk in (("one chunk", args.rows), (f"chunks of {args.chunk}", args.chunk)):
        base = None
        for mode in MODES:
            took = cold_build(args.rows, args.delay, chunk, mode)
            base = base or took
            print(f"{shape:<22}{mode:<12}{took:>9.2f}{took / base:>8.2f}")


if __name__ == "__main__":
    main()
