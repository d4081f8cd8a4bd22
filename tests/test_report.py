"""`dreammake report`: one self-contained HTML file with the DAG and loss plots as inline SVG."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
from test_cards import make_workflow, run_cards, write_all_cards


def test_report_is_self_contained_with_dag_loss_plot_and_card_links(tmp_path: Path) -> None:
    project = make_workflow(tmp_path / "project")
    project.run()
    write_all_cards(project.root)
    project.dreamfile((project.root / "Dreamfile").read_text().replace("Summarize this", "Summarise this"))
    run_cards(project.root, "report", "-o", "out/report.html")
    html = (project.root / "out/report.html").read_text()

    assert not re.search(r"https?://", html)  # no external reference of any kind
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    dag = re.search(r'<svg class="dag".*?</svg>', html, re.DOTALL).group(0)
    for job in ("abstracts", "tweets", "mixed", "splits", "tweet_model", "data/topics.txt"):
        assert f">{job}</text>" in dag, job
    assert dag.count('marker-end="url(#arrow)"') == 7  # 6 edges between jobs, 1 from the source file
    assert 'class="node stale"' in dag and 'class="node up-to-date"' in dag
    plot = re.search(r'<svg class="plot".*?</svg>', html, re.DOTALL).group(0)
    assert ">train loss</text>" in plot and ">eval loss</text>" in plot  # matplotlib's legend, as text
    assert x_ticks(plot) == ["0", "5", "10", "15", "20", "25", "30", "35", "40"]  # steps: integers only
    assert '<svg class="bars"' in html and "1,500 / 0" in html
    assert 'href="../targets/splits/train.README.md"' in html
    assert 'href="../models/tweet-model/README.md"' in html
    assert "$3.0000" in html  # 3,000 fake calls at $0.001


def x_ticks(svg: str) -> list[str]:
    """The x-axis tick labels of a matplotlib SVG."""
    return re.findall(r'<g id="xtick_\d+">.*?<text[^>]*>([^<]*)</text>', svg, re.DOTALL)


def test_layers_put_jobs_right_of_their_inputs_and_collapse_big_graphs() -> None:
    from dreammake.cards.svg import MAX_JOB_NODES, dag_svg, layers

    g = nx.DiGraph()
    g.add_node("src.txt", kind="source")
    for name in "abcd":
        g.add_node(name, kind="job", rule=name, outputs=[f"{name}.parquet"])
    g.add_edges_from([("src.txt", "b"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    columns, _ = layers(g)
    where = {n: i for i, col in enumerate(columns) for n in col}
    assert where["src.txt"] == where["a"] == 0 and where["b"] == where["c"] == 1 and where["d"] == 2

    big = nx.DiGraph()
    for i in range(MAX_JOB_NODES + 1):
        big.add_node(f"gen[i={i}]", kind="job", rule="gen", outputs=[f"t/{i}.parquet"])
        big.add_node(f"judge[i={i}]", kind="job", rule="judge", outputs=[f"j/{i}.parquet"])
        big.add_edge(f"gen[i={i}]", f"judge[i={i}]")
    svg = dag_svg(big, {})
    assert ">gen</text>" in svg and f">{MAX_JOB_NODES + 1:,} jobs</text>" in svg and "gen[i=3]" not in svg
