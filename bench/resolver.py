"""Resolver benchmark: a wide Dreamfile of N independent source→A→B chains plus one aggregate.

For each N it builds the workflow, then times, each in a fresh process (start-up included):
  * the no-op `dreammake -n`,
  * `dreammake -n` after one source file changed,
and for N=1,000 the first full build with `-j 2`. Prints seconds and µs per job (no-op: best and median of
five runs, after one warm-up run). Child processes may write bytecode caches, as an installed package has them.

    python bench/resolver.py                 # N = 1,000 and 10,000
    python bench/resolver.py --sizes 1000    # just one size
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

DREAMFILE = '''
def step_a(input):
    return {"x": [v + 1 for v in input["x"]]}

def step_b(input):
    return {"x": [v * 2 for v in input["x"]]}

def total(input):
    return {"n": [len(input)]}

N = config.get("n", 10)
for i in range(N):
    rule(f"a{i}", input=f"src/s{i}.parquet", output=f"out/a{i}.parquet", run=step_a)
    rule(f"b{i}", input=f"out/a{i}.parquet", output=f"out/b{i}.parquet", run=step_b)
rule("aggregate", input=[f"out/b{i}.parquet" for i in range(N)], output="out/total.parquet", run=total)
'''


def make_project(folder: str, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(folder, "src"))
    table = pa.table({"x": [1, 2, 3]})
    for i in range(n):
        pq.write_table(table, os.path.join(folder, "src", f"s{i}.parquet"))
    with open(os.path.join(folder, "Dreamfile"), "w") as f:
        f.write(f"config.setdefault('n', {n})\n" + DREAMFILE)


CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], cwd: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=CHILD_ENV)
    elapsed = time.perf_counter() - started
    if out.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return elapsed, out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    exe = [sys.executable, "-m", "dreammake"]
    for n in [int(s) for s in args.sizes.split(",")]:
        jobs = 2 * n + 1
        folder = tempfile.mkdtemp(prefix=f"dm-bench-{n}-")
        try:
            make_project(folder, n)
            build_s, last = timed([*exe, "-j", "2", "--quiet"], folder)
            print(f"N={n:>6}  full build -j 2         {build_s:8.2f} s  {build_s / jobs * 1e6:9.0f} µs/job"
                  f"  ({jobs} jobs)")
            last = timed([*exe, "-n"], folder)[1]
            runs = sorted(timed([*exe, "-n"], folder)[0] for _ in range(5))
            noop, median = runs[0], runs[2]
            print(f"N={n:>6}  no-op dreammake -n      {noop:8.3f} s  {noop / jobs * 1e6:9.1f} µs/job  "
                  f"(median {median:.3f} s)  [{last}]")
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"x": [7, 8, 9]}), os.path.join(folder, "src", "s0.parquet"))
            changed, last = timed([*exe, "-n"], folder)
            print(f"N={n:>6}  -n after 1 source edit  {changed:8.3f} s  {changed / jobs * 1e6:9.1f} µs/job  [{last}]")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
