"""Generation overhead: a prompt rule with an instant in-process backend over N rows.

For each N (1,000 / 10,000 / 100,000) it times, each as a whole `dreammake` process:
  cold      — every row goes to the (instant) model and into the row cache,
  no-op     — `dreammake` again: nothing to do,
  cached    — the rule's fingerprint changed (a rule param) but every row is in the cache,
and a baseline in the same command: a plain user-function rule producing the same output
(read Parquet, add a column derived from the input, write Parquet) — the I/O floor.

    python bench/generation_overhead.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

INCLUDE_INSTANT = f"include({os.path.join(os.path.dirname(os.path.abspath(__file__)), 'instant_backend.py')!r})\n"
DREAMFILE = '''
def baseline(input, params):
    table = input.data.table
    import pyarrow as pa
    return table.append_column("a", pa.array([q[::-1] for q in table.column("q").to_pylist()]))

rule("answers", input="src/q.parquet", output="out/a.parquet", params={"tag": config.get("tag", 0)},
     run=rules.prompt(llm=llm(Instant()), input_column="q", output_column="a"))
rule("plain", input="src/q.parquet", output="out/plain.parquet", params={"tag": config.get("tag", 0)},
     run=baseline)
'''


def timed(args: list[str], cwd: str) -> float:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dreammake", "--quiet", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq

    print(f"{'rows':>8} {'step':<8} {'prompt rule':>12} {'µs/row':>8} {'baseline':>10} {'ratio':>7}")
    for n in [int(s) for s in args.sizes.split(",")]:
        folder = tempfile.mkdtemp(prefix=f"dm-gen-{n}-")
        try:
            os.makedirs(os.path.join(folder, "src"))
            pq.write_table(pa.table({"q": [f"question number {i} about topic {i % 97}" for i in range(n)]}),
                           os.path.join(folder, "src", "q.parquet"))
            with open(os.path.join(folder, "Dreamfile"), "w") as f:
                f.write(INCLUDE_INSTANT + DREAMFILE)
            steps = [("cold", []), ("no-op", []), ("cached", ["--config", "tag=1"])]
            for step, extra in steps:
                prompt_s = timed(["out/a.parquet", *extra], folder)
                base_s = timed(["out/plain.parquet", *extra], folder)
                print(f"{n:>8} {step:<8} {prompt_s:>10.2f} s {prompt_s / n * 1e6:>8.1f} {base_s:>8.2f} s"
                      f" {prompt_s / base_s:>6.2f}x")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
