"""Run one benchmark against this checkout and an earlier commit, alternating, in the same command.

The bench script is this checkout's; only the dreammake it measures changes (the earlier commit is checked out
into a temporary worktree and put first on PYTHONPATH, so every `python -m dreammake` the bench starts loads
it). Each side runs `--rounds` times in turn, so a noisy machine slows both alike; the output of every run is
printed, tagged, and then the lines that carry seconds are set side by side with their ratio (this / base).

    python bench/compare.py d6d79f4 generation_overhead.py --sizes 10000
    python bench/compare.py HEAD~3 resolver.py --sizes 1000 --shapes named
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECONDS = re.compile(r"(\d+\.\d+) s\b")


def run(bench: str, args: list[str], tree: str) -> list[str]:
    """The bench's output lines with `tree`'s dreammake first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    out = subprocess.run([sys.executable, os.path.join(HERE, bench), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{bench} failed against {tree}:\n{out.stdout[-1500:]}{out.stderr[-1500:]}")
    return out.stdout.strip().splitlines()


def first_seconds(line: str) -> float | None:
    """The first `N.NNN s` figure of a line."""
    m = SECONDS.search(line)
    return float(m.group(1)) if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the earlier commit")
    parser.add_argument("bench", help="a script in bench/")
    parser.add_argument("--rounds", type=int, default=1)
    args, rest = parser.parse_known_args()
    base_tree = tempfile.mkdtemp(prefix="dm-base-")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", base_tree, args.base], check=True,
                   capture_output=True)
    try:
        best: dict[str, dict[int, float]] = {"this": {}, "base": {}}
        labels: dict[int, str] = {}
        for _ in range(args.rounds):
            for side, tree in (("base", base_tree), ("this", ROOT)):
                for i, line in enumerate(run(args.bench, rest, tree)):
                    print(f"[{side}] {line}", flush=True)
                    value = first_seconds(line)
                    if value is not None:
                        labels[i] = SECONDS.split(line, 1)[0].strip()
                        best[side][i] = min(value, best[side].get(i, value))
        print(f"\n{'':60}  {'base':>9}  {'this':>9}  this/base")
        for i, label in labels.items():
            if i in best["this"] and i in best["base"]:
                ratio = best["this"][i] / best["base"][i] if best["base"][i] else float("nan")
                print(f"{label[:60]:60}  {best['base'][i]:8.3f}s  {best['this'][i]:8.3f}s  {ratio:8.2f}×")
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", base_tree], capture_output=True)
        shutil.rmtree(base_tree, ignore_errors=True)


if __name__ == "__main__":
    main()
