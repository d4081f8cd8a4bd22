"""Peak memory of a prompt rule over many rows: `process_with_prompt` (or `prompt` with a template where that
kind does not exist) with an instant in-process backend, run as a whole `dreammake` process.

Steps, each a separate `dreammake` process whose peak RSS is read from the kernel (wait4 rusage; the total
over all of them is resource.getrusage(RUSAGE_CHILDREN).ru_maxrss):
  cold    — every row goes to the (instant) model and into the row cache,
  no-op   — nothing to do,
  cached  — the rule's fingerprint changed (a rule param) but every row is in the row cache.
The rows stream through in chunks, so the peak should not grow with the row count (goal: < 1.5 GB at 1M rows).

    python bench/memory_process.py [--rows 1000000] [--kind auto|prompt|process_with_prompt] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

INCLUDE_INSTANT = f"include({os.path.join(os.path.dirname(os.path.abspath(__file__)), 'instant_backend.py')!r})\n"
DREAMFILE = '''
model = llm(Instant(keep=24))
if KIND == "process_with_prompt":
    step = rules.process_with_prompt(llm=model, instruction="Answer in one line.", input_column="q",
                                     output_column="a")
else:
    step = rules.prompt(llm=model, template="Answer in one line.\\n\\n{{ q }}", output_column="a")
rule("answers", input="src/q.parquet", output="out/a.parquet", params={"tag": config.get("tag", 0)}, run=step)
'''

GOAL_BYTES = 1.5e9


def run_step(args: list[str], cwd: str) -> tuple[float, int]:
    """Run dreammake in `cwd`; returns (wall seconds, peak RSS in bytes of that process)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dreammake", "--quiet", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(output.decode(errors="replace"))
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


def make_project(folder: str, n: int, kind: str) -> None:
    """Write the input (in chunks, so this stays small) and the Dreamfile. Runs in a child process: the bench
    process itself must stay small, since a child's peak RSS counts the parent's memory it was forked from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(folder, "src"))
    topics = [f"topic {t}" for t in range(97)]
    schema = pa.schema([("id", pa.int64()), ("q", pa.string())])
    with pq.ParquetWriter(os.path.join(folder, "src", "q.parquet"), schema) as writer:
        for start in range(0, n, 100_000):
            ids = range(start, min(n, start + 100_000))
            questions = [f"question number {i} about {topics[i % 97]}: what happens next?" for i in ids]
            writer.write_table(pa.table({"id": pa.array(ids, pa.int64()), "q": pa.array(questions, pa.string())},
                                        schema=schema))
    with open(os.path.join(folder, "Dreamfile"), "w") as f:
        f.write(f"KIND = {kind!r}\n" + INCLUDE_INSTANT + DREAMFILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kind", default="auto", choices=["auto", "prompt", "process_with_prompt"])
    parser.add_argument("--keep", action="store_true", help="keep the project folder (printed)")
    parser.add_argument("--make", metavar="FOLDER", help=argparse.SUPPRESS)  # internal: write the project
    args = parser.parse_args()
    if args.make:
        make_project(args.make, args.rows, args.kind)
        return
    kind = args.kind
    if kind == "auto":
        import dreammake.rules

        kind = "process_with_prompt" if "process_with_prompt" in dir(dreammake.rules) else "prompt"

    folder = tempfile.mkdtemp(prefix=f"dm-mem-{args.rows}-")
    try:
        subprocess.run([sys.executable, __file__, "--make", folder, "--rows", str(args.rows), "--kind", kind],
                       check=True)
        print(f"rule kind: {kind}; rows: {args.rows:,}; project: {folder}")
        print(f"{'step':<8} {'wall':>9} {'rows/s':>12} {'peak RSS':>10}")
        peaks = {}
        for step, extra in [("cold", []), ("no-op", []), ("cached", ["--config", "tag=1"])]:
            wall, peak = run_step(["out/a.parquet", *extra], folder)
            peaks[step] = peak
            rate = f"{args.rows / wall:,.0f}" if step != "no-op" else "-"
            print(f"{step:<8} {wall:>7.2f} s {rate:>12} {peak / 1e6:>7.0f} MB")
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(os.path.join(folder, "out", "a.parquet")).metadata.num_rows
        assert rows == args.rows, f"output has {rows} rows, expected {args.rows}"
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        worst = max(peaks.values())
        print(f"peak RSS over all dreammake processes (RUSAGE_CHILDREN): {children / 1e6:.0f} MB; "
              f"goal < {GOAL_BYTES / 1e9:.1f} GB: {'met' if worst < GOAL_BYTES else 'NOT met'}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
