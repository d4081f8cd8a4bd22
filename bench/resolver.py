"""Resolver benchmark: a wide Dreamfile of N independent source→A→B chains plus one aggregate.

Two shapes of the same workflow: `named` (the chains' first rule runs a named function) and `lambda` (it runs
`lambda input: ...` made in the loop: N function objects over one code object). For each N and shape it builds
the workflow, then times, each in a fresh process (start-up included):
  * the no-op `dreammake -n` (answered from the up-to-date record, `dreammake/uptodate.py`), and `make -q -r`
    on an equivalent generated Makefile in the same folder (the baseline: the ratio dreammake / make is what
    to read on a noisy machine), and the full no-op check that executes the Dreamfile (no record),
  * `dreammake -n` after one source file changed,
and the first full build with `-j 2`. No-op figures are the best and median of five runs after a warm-up.
Child processes may write bytecode caches, as an installed package has them.

    python bench/resolver.py                          # N = 1,000 and 10,000, both shapes
    python bench/resolver.py --sizes 1000 --shapes lambda
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
    rule(f"a{i}", input=f"src/s{i}.parquet", output=f"out/a{i}.parquet", run=STEP_A)
    rule(f"b{i}", input=f"out/a{i}.parquet", output=f"out/b{i}.parquet", run=step_b)
rule("aggregate", input=[f"out/b{i}.parquet" for i in range(N)], output="out/total.parquet", run=total)
'''


SHAPES = {"named": "step_a", "lambda": 'lambda input: {"x": [v + 1 for v in input["x"]]}'}


def make_project(folder: str, n: int, shape: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(folder, "src"))
    table = pa.table({"x": [1, 2, 3]})
    for i in range(n):
        pq.write_table(table, os.path.join(folder, "src", f"s{i}.parquet"))
    with open(os.path.join(folder, "Dreamfile"), "w") as f:
        f.write(f"config.setdefault('n', {n})\n" + DREAMFILE.replace("STEP_A", SHAPES[shape]))


def write_makefile(folder: str, n: int) -> None:
    """The same DAG for GNU make: after a dreammake build every target is up to date for `make -q` too."""
    lines = ["out/total.parquet: " + " ".join(f"out/b{i}.parquet" for i in range(n)), "\ttrue"]
    for i in range(n):
        lines += [f"out/a{i}.parquet: src/s{i}.parquet", "\ttrue", f"out/b{i}.parquet: out/a{i}.parquet", "\ttrue"]
    with open(os.path.join(folder, "Makefile"), "w") as f:
        f.write("\n".join(lines) + "\n")


def best_and_median(cmd: list[str], cwd: str, expect: int | None = None,
                    env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Five timed runs after a warm-up: (best, median, last line of output)."""
    last = timed(cmd, cwd, expect, env)[1]
    runs = sorted(timed(cmd, cwd, expect, env)[0] for _ in range(5))
    return runs[0], runs[2], last


CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], cwd: str, expect: int | None = None, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**CHILD_ENV, **(env or {})})
    elapsed = time.perf_counter() - started
    if out.returncode not in (0, 1) or (expect is not None and out.returncode != expect):
        sys.exit(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout[-1000:]}{out.stderr[-2000:]}")
    return elapsed, out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--shapes", default="named,lambda")
    args = parser.parse_args()
    exe = [sys.executable, "-m", "dreammake"]
    for n in [int(s) for s in args.sizes.split(",")]:
        jobs = 2 * n + 1
        for shape in args.shapes.split(","):
            folder = tempfile.mkdtemp(prefix=f"dm-bench-{n}-")
            tag = f"N={n:>6} {shape:<6}"
            try:
                make_project(folder, n, shape)
                build_s, _ = timed([*exe, "-j", "2", "--quiet"], folder, expect=0)
                print(f"{tag}  full build -j 2         {build_s:8.2f} s  {build_s / jobs * 1e6:9.0f} µs/job"
                      f"  ({jobs} jobs)")
                write_makefile(folder, n)
                noop, median, last = best_and_median([*exe, "-n"], folder, expect=0)
                make_best, make_median, _ = best_and_median(["make", "-q", "-r", "out/total.parquet"], folder, 0)
                print(f"{tag}  no-op dreammake -n      {noop:8.3f} s  {noop / jobs * 1e6:9.1f} µs/job  "
                      f"(median {median:.3f} s)  [{last}]")
                print(f"{tag}  no-op make -q -r        {make_best:8.3f} s  {make_best / jobs * 1e6:9.1f} µs/job  "
                      f"(median {make_median:.3f} s)")
                print(f"{tag}  ratio dreammake / make  {noop / make_best:8.2f} ×  "
                      f"(medians {median / make_median:.2f} ×)")
                full, full_median, _ = best_and_median([*exe, "-n"], folder, 0, {"DREAMMAKE_NO_RECORD": "1"})
                print(f"{tag}  no-op full check        {full:8.3f} s  {full / jobs * 1e6:9.1f} µs/job  "
                      f"(median {full_median:.3f} s; Dreamfile executed, no up-to-date record)")
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({"x": [7, 8, 9]}), os.path.join(folder, "src", "s0.parquet"))
                changed, last = timed([*exe, "-n"], folder, expect=0)
                print(f"{tag}  -n after 1 source edit  {changed:8.3f} s  {changed / jobs * 1e6:9.1f} µs/job  [{last}]")
            finally:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
