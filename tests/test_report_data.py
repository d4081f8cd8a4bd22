"""The report's data section (sample rows with the exact messages behind them, searchable), a failed run's job
and error, the DAG's edges drawn around the boxes with labels never cut, and matplotlib charts with integer
step ticks."""

from __future__ import annotations

import html as htmllib
import os
import re
from pathlib import Path

import networkx as nx
from fakes import calls
from test_report import x_ticks

HEADER = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from fakes import EchoBackend
m = llm(EchoBackend())
rule("src", output="t/src.parquet", run=lambda: {{"abstract": [f"abstract {{i}}" for i in range(8)]}})
rule("gen", input="t/src.parquet", output="t/gen.parquet",
     run=rules.process_with_prompt(llm=m, instruction=config.get("instruction", "Tweet it."),
                                   input_column="abstract", output_column="tweet", system="Be brief."))
rule("picked", input="t/gen.parquet", output="t/picked.parquet",
     run=rules.filter_with_prompt(llm=m, instruction="Keep?", input_column="tweet", keep=lambda t: "3" in t))
"""
FAILING = """
def boom(input):
    raise ValueError("the tweets are too long")
rule("broken", input="t/gen.parquet", output="t/broken.parquet", run=boom)
"""


def section(html: str, name: str) -> str:
    return re.search(rf'<section id="{name}".*?</section>', html, re.DOTALL).group(0)


def text_of(fragment: str) -> str:
    """The text of an HTML fragment: each tag, with the white space around it, becomes one space."""
    return htmllib.unescape(re.sub(r"\s*<[^>]+>\s*", " ", fragment))


def target_block(data: str, target: str) -> str:
    """The part of the data section about one target."""
    return next(b for b in data.split('<div class="data-target">') if f"<code>{target}</code>" in b)


def test_data_section_has_sample_rows_and_their_exact_messages(project):
    project.dreamfile(HEADER)
    project.run("t/picked.parquet")
    before = len(calls(project.root))
    project.run("report", "-o", "report.html")
    assert len(calls(project.root)) == before  # messages come from the row cache, no model call
    data = section((project.root / "report.html").read_text(), "data")
    assert 'id="data-filter"' in data and data.count('class="data-target"') == 3
    gen = target_block(data, "t/gen.parquet")
    rows = re.findall(r'<tbody class="data-row">.*?</tbody>', gen, re.DOTALL)
    assert len(rows) == 5  # the first five of eight
    first = text_of(rows[0])
    assert "abstract 0" in first and "0 tcartsba\n\n.ti teewT" in first  # the row: input and generation
    assert '<th class="gen">tweet</th>' in gen and '<th class="">abstract</th>' in gen
    messages = re.findall(r'<div class="msg"><b>(\w+)</b>(.*?)</div>', rows[0], re.DOTALL)
    assert [(role, htmllib.unescape(text)) for role, text in messages] == [
        ("system", "Be brief."), ("user", "Tweet it.\n\nabstract 0")]
    assert "Tweet it.\n\nabstract 4" in text_of(rows[4])
    # a filter's output rows do not follow its input rows: its first requests are listed instead
    picked = target_block(data, "t/picked.parquet")
    assert "requests for the first input rows" in picked and "Keep?\n\n0 tcartsba" in text_of(picked)

    project.run("report", "-o", "stale.html", "--config", "instruction=Summarize.")  # never built, not cached
    data = section((project.root / "stale.html").read_text(), "data")
    gen = target_block(data, "t/gen.parquet")
    assert '<div class="msg">' not in gen and "not in the row cache" in gen
    assert len(calls(project.root)) == before


def test_a_failed_run_names_its_job_and_error(project):
    project.dreamfile(HEADER + FAILING)
    project.run("t/broken.parquet", code=2)
    project.run("report", "-o", "report.html")
    html = (project.root / "report.html").read_text()
    failure = text_of(section(html, "last-failure"))
    assert "job broken" in failure and "ValueError: the tweets are too long" in failure
    runs = text_of(section(html, "runs"))
    assert "broken" in runs and "the tweets are too long" in runs and "failed" in runs


def test_state_files_from_before_get_the_failure_columns(tmp_path: Path):
    import duckdb

    from dreammake.state import State

    (tmp_path / ".dreammake").mkdir()
    db = duckdb.connect(str(tmp_path / ".dreammake/state.duckdb"))
    db.execute("CREATE TABLE runs (id BIGINT PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP,"
               " command VARCHAR, status VARCHAR, jobs_run INTEGER, jobs_failed INTEGER)")
    db.execute("CREATE SEQUENCE run_ids START 1; SELECT nextval('run_ids')")
    db.execute("INSERT INTO runs VALUES (1, now(), now(), 'dreammake', 'ok', 3, 0)")
    db.close()
    state = State(tmp_path)
    try:
        run_id = state.start_run("dreammake x")
        state.finish_run(run_id, "failed", 0, 1, ("x", "rule 'x' failed: boom"))
        old, new = state.runs(5)[::-1]
    finally:
        state.close()
    assert old["status"] == "ok" and old["failed_job"] is None and old["error"] is None
    assert new["failed_job"] == "x" and new["error"] == "rule 'x' failed: boom"


def cubic_points(d: str) -> list[tuple[float, float]]:
    """Points along an SVG path made of M, H and C commands (20 per curve)."""
    points: list[tuple[float, float]] = []
    for cmd, args in re.findall(r"([MHC])([^MHC]*)", d):
        v = [float(a) for a in args.split()]
        if cmd == "M":
            points.append((v[0], v[1]))
        elif cmd == "H":
            x0, y0 = points[-1]
            points += [(x0 + (v[0] - x0) * t / 20, y0) for t in range(1, 21)]
        else:
            (x0, y0), (x1, y1, x2, y2, x3, y3) = points[-1], v
            for k in range(1, 21):
                t = k / 20
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3
                points.append((a * x0 + b * x1 + c * x2 + e * x3, a * y0 + b * y1 + c * y2 + e * y3))
    return points


def test_edges_go_around_the_boxes_and_long_labels_wrap():
    from dreammake.cards.svg import dag_svg

    g = nx.DiGraph()
    long_name = "score_with_a_rather_long_rule_name[model=smollm2-135m-instruct,split=validation]"
    chain = ["gen", "tweets", "judge", long_name, "report"]
    for name in chain:
        g.add_node(name, kind="job", rule=name, outputs=[f"targets/{name}/a/deeply/nested/folder/out.parquet"])
    g.add_edges_from(zip(chain, chain[1:]))
    g.add_edges_from([("gen", "report"), ("gen", "judge"), ("tweets", long_name)])  # edges that skip columns
    svg = dag_svg(g, {})
    boxes = [tuple(float(v) for v in m) for m in
             re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" rx="8"', svg)]
    assert len(boxes) == len(chain)
    paths = re.findall(r'<path class="edge" d="([^"]+)"', svg)
    assert len(paths) == g.number_of_edges()
    for d in paths:
        for px, py in cubic_points(d):
            inside = [b for b in boxes if b[0] + 1 < px < b[0] + b[2] - 1 and b[1] + 1 < py < b[1] + b[3] - 1]
            assert not inside, (d, px, py)
    lines = re.findall(r"<tspan[^>]*>([^<]*)</tspan>", svg)
    assert "…" not in svg and max(map(len, lines)) <= 36  # wrapped, never cut
    assert long_name in "".join(lines) and f"targets/{long_name}/a/deeply/nested/folder/out.parquet" in "".join(lines)


def test_charts_have_integer_step_ticks_and_a_single_eval_point_shows():
    from dreammake.cards.svg import bars_svg, line_plot_svg

    steps = list(range(1, 16))
    svg = line_plot_svg("m: models/m", [("train loss", steps, [3 / s for s in steps]), ("eval loss", [15], [0.4])])
    ticks = x_ticks(svg)
    assert ticks and all(t.isdigit() for t in ticks), ticks
    assert ">eval loss</text>" in svg and ">0.4</text>" in svg  # the one eval point, labelled with its value
    assert not re.search(r"https?://", svg) and not svg.startswith("<?xml")
    bars = bars_svg([("abstracts", 1500, 0), ("a_job_with_a_long_name[split=validation]", 3, 1497)])
    assert ">a_job_with_a_long_name[split=validation]</text>" in bars and ">1,500 / 0</text>" in bars
    assert all(t.isdigit() for t in re.findall(r'<g id="xtick_\d+">.*?<text[^>]*>([^<]*)</text>', bars, re.DOTALL))


def test_without_matplotlib_charts_are_one_error_line_and_chartless_reports_still_work(project, monkeypatch):
    import sys

    from ux_helpers import assert_one_error_line

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    project.dreamfile('rule("a", output="t/a.parquet", run=lambda: {"x": [1, 2]})\n')
    project.run("a")
    project.run("report", "-o", "report.html")  # nothing to chart
    assert "<svg class=\"dag\"" in (project.root / "report.html").read_text()
    project.dreamfile(HEADER)
    project.run("t/gen.parquet")
    line = assert_one_error_line(project.run("report", "-o", "report.html", code=2))
    assert "the report's charts need matplotlib — pip install 'dreammake[report]'" in line


def test_calls_vs_cache_hits_sum_per_rule_when_many_jobs_used_a_model():
    from dreammake.report import BARS_SHOWN, llm_spend

    def row(job: str, rule: str, calls: int, cached: int) -> dict:
        return {"job": job, "rule": rule, "llm_calls": calls, "llm_cached": cached}

    few = [row("gen", "gen", 3, 1), row("split", "split", 0, 0)]
    assert llm_spend(few) == [("gen", 3, 1)]
    many = [row(f"gen[i={i}]", "gen", 2, 1) for i in range(BARS_SHOWN)] + [row("judge", "judge", 5, 0)]
    assert llm_spend(many) == [(f"gen ({BARS_SHOWN} jobs)", 2 * BARS_SHOWN, BARS_SHOWN), ("judge (1 job)", 5, 0)]
