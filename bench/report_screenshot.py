"""Render a `dreammake report` of a small offline workflow with headless Chromium and check the PNG.

    python bench/report_screenshot.py [--out /tmp/dreammake-report/report.png] [--keep]

The workflow (an instant fake model, a fake trainer writing metrics.parquet) is built in a temp
folder, its cards and report are written, and Chromium screenshots the report. The PNG must be
1400x1800, not blank, and show the DAG's node colours and the loss plot's line colour.
Needs Debian's chromium (`apt-get install -y chromium`).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from collections import Counter
from pathlib import Path

WIDTH, HEIGHT = 1400, 1800
DAG_FILL = (0xDC, 0xFC, 0xE7)  # an up-to-date job box
PLOT_LINE = (0x25, 0x63, 0xEB)  # the first series of a loss plot (and the "model calls" bars)
DREAMFILE = '''
import json, os
from dreammake.actions import Action
from dreammake.llm.base import Response


class Instant:
    """A model that answers at once (so the bench needs no network and no weights)."""
    name = "smollm2-135m-instruct"

    def identity(self):
        return {"backend": "instant"}

    def generate(self, requests, on_result, cancel):
        for i, r in enumerate(requests):
            text = r.messages[-1]["content"]
            on_result(i, Response(f"{text[-24:]} #{r.seed}", "stop", len(text.split()), 12, 0.0004))

    def close(self):
        pass


class FakeTrain(Action):
    kind = "train_sft"

    def __init__(self, base):
        self.base = base

    def execute(self, ctx):
        import math
        import pyarrow as pa, pyarrow.parquet as pq
        out = next(iter(ctx.outputs.values()))
        with open(os.path.join(out, "adapter_config.json"), "w") as f:
            json.dump({"base_model_name_or_path": self.base}, f)
        steps = list(range(1, 201))
        pq.write_table(pa.table({
            "step": steps,
            "train_loss": [2.2 * math.exp(-s / 60) + 0.4 + 0.08 * math.sin(s) for s in steps],
            "eval_loss": [2.3 * math.exp(-s / 70) + 0.5 if s % 20 == 0 else None for s in steps]}),
            os.path.join(out, "metrics.parquet"))


tiny = llm(Instant())
rule("topics", input="data/topics.txt", output="targets/topics.parquet",
     run=lambda input: {"topic": open(input).read().split()})
rule("abstracts", input="targets/topics.parquet", output="targets/abstracts.parquet",
     run=rules.process_with_prompt(llm=tiny, input_column="topic", output_column="abstract",
                                   instruction="Write an abstract of an NLP paper about this topic."))
rule("tweets", input="targets/abstracts.parquet", output="targets/tweets.parquet",
     run=rules.process_with_prompt(llm=tiny, input_column="abstract", output_column="tweet",
                                   instruction="Summarize this abstract as a tweet."))
rule("split", input="targets/tweets.parquet",
     output={"train": "targets/train.parquet", "validation": "targets/validation.parquet"},
     run=lambda input: {"train": input[: len(input) * 9 // 10], "validation": input[len(input) * 9 // 10 :]})
rule("tweet_model", input={"train": "targets/train.parquet", "validation": "targets/validation.parquet"},
     output="models/tweet-model/", run=FakeTrain(base="smollm2-135m-instruct"))
'''


def build_report(root: Path) -> Path:
    """Build the workflow, add topics and build again (old rows come from the row cache), write cards and
    the report."""
    from dreammake.cards.render import write_built_cards
    from dreammake.console import Console
    from dreammake.project import Options, Project
    from dreammake.report import write_report

    (root / "data").mkdir(parents=True)
    (root / "Dreamfile").write_text(textwrap.dedent(DREAMFILE))
    console = Console(quiet=True)
    with contextlib.chdir(root):
        for topics in (300, 400):
            (root / "data/topics.txt").write_text(" ".join(f"topic{i}" for i in range(topics)))
            with Project(Options(), console) as project:
                graph = project.graph()
                planner = project.planner(graph)
                summary = project.build(planner, planner.plan())
                write_built_cards(graph, project.state, summary.ran)
        with Project(Options(), console) as project:
            graph = project.graph()
            write_report(graph, project.planner(graph).plan(), project.state, "report.html", "tweet-distillation")
    return root / "report.html"


def screenshot(html: Path, png: Path) -> float:
    """Chromium's headless screenshot of a local file (no network, fresh profile); returns seconds taken."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("chromium is not installed: apt-get update && apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="dreammake-chromium-") as profile:
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}",
                html.resolve().as_uri()]
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, timeout=120)
        return time.perf_counter() - started


def pixels(png: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB/RGBA PNG (a small decoder: no Pillow needed)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour = header[0], header[1], header[2], header[3]
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format (depth {depth}, colour type {colour})"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    out = []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.extend(tuple(line[i : i + 3]) for i in range(0, stride, bpp))
        prev = line
    return width, height, out


def check(png: Path) -> dict[str, object]:
    """The screenshot is the right size, not blank, and shows the DAG boxes and the plot line."""
    width, height, rgb = pixels(png)
    counts = Counter(rgb)
    background = counts.most_common(1)[0][1] / len(rgb)
    result = {"size": (width, height), "bytes": png.stat().st_size, "colours": len(counts),
              "background_share": round(background, 3), "dag_pixels": counts[DAG_FILL],
              "plot_line_pixels": counts[PLOT_LINE]}
    assert (width, height) == (WIDTH, HEIGHT), result
    assert len(counts) > 50 and background < 0.95, f"the screenshot looks blank: {result}"
    assert counts[DAG_FILL] > 500, f"no DAG node visible: {result}"
    assert counts[PLOT_LINE] > 200, f"no plot line visible: {result}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/dreammake-report/report.png", help="Where to write the PNG.")
    parser.add_argument("--keep", action="store_true", help="Keep the temp project (its path is printed).")
    args = parser.parse_args()
    png = Path(args.out)
    png.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="dreammake-report-"))
    try:
        started = time.perf_counter()
        html = build_report(root)
        built = time.perf_counter() - started
        shot = screenshot(html, png)
        result = check(png)
        shutil.copy(html, png.with_suffix(".html"))
        print(f"workflow + cards + report: {built:.1f}s; screenshot: {shot:.1f}s")
        print(f"{png}: {result}")
    finally:
        if args.keep:
            print(f"project kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
