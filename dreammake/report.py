"""`dreammake report`: one self-contained HTML file about a project.

It shows the DAG (inline SVG, laid out in `cards/svg.py`), per-job status, timings, rows, LLM calls vs
row-cache hits, tokens and cost (charts by matplotlib), training loss curves from checkpoints'
`metrics.parquet`, the first rows of every dataset target with, for prompt rules, the exact messages that
produced them (found in the row cache by recomputing their keys, never by calling a model; searchable in
the page), recent runs with the failing job and its error, and relative links to the cards. Nothing in it
refers to the network.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dreammake.cards import card_paths
from dreammake.cards.lineage import LLM_STATS
from dreammake.cards.secrets import redact, scrub_command
from dreammake.cards.svg import bars_svg, dag_svg, line_plot_svg

if TYPE_CHECKING:
    from dreammake.graph import Graph
    from dreammake.planner import Decision
    from dreammake.state import State

METRICS = "metrics.parquet"
RUNS_SHOWN = 10
BARS_SHOWN = 30  # jobs drawn one bar each in the calls vs cache hits chart; more are summed per rule
SAMPLE_ROWS = 5  # rows shown per dataset target
DATA_TARGETS = 50  # dataset targets shown at most (the first ones in build order)
CELL_CHARS = 2000  # characters of a cell shown in full; longer ones are cut, saying by how much


def job_status(decision: Decision) -> str:
    """up-to-date, stale (an output exists but must be rebuilt) or missing."""
    if not decision.stale:
        return "up-to-date"
    return "stale" if all(os.path.lexists(p) for p in decision.job.output_paths) else "missing"


def job_rows(decisions: list[Decision], details: dict[str, dict[str, Any]], here: str) -> list[dict[str, Any]]:
    """One table row per job with outputs: status, timing, rows, LLM spend and card links."""
    rows = []
    for d in decisions:
        job = d.job
        if job.rule.is_phony:
            continue
        recs = [details.get(p) or {} for p in job.output_paths]
        first = recs[0]
        stats = first.get("stats") or {}
        counted = [r["rows"] for r in recs if r.get("rows") is not None]
        rows.append({
            "job": job.name, "rule": job.rule.name, "kind": getattr(job.rule.action, "kind", "function"),
            "status": job_status(d), "reason": d.detail, "rows": sum(counted) if counted else None,
            "built_at": first["built_at"].strftime("%Y-%m-%d %H:%M:%S") if first.get("built_at") else None,
            "duration_s": first.get("duration_s"), **{k: stats.get(k, 0) for k in LLM_STATS},
            "outputs": [{"path": p, "cards": _card_links(p, here)} for p in job.output_paths],
        })
    return rows


def llm_spend(rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(name, model calls, cache hits) per job that used a model; per rule when more than BARS_SHOWN jobs did."""
    used = [r for r in rows if r["llm_calls"] or r["llm_cached"]]
    if len(used) <= BARS_SHOWN:
        return [(r["job"], r["llm_calls"], r["llm_cached"]) for r in used]
    by_rule: dict[str, list[int]] = {}
    for r in used:
        totals = by_rule.setdefault(r["rule"], [0, 0, 0])
        totals[0] += r["llm_calls"]
        totals[1] += r["llm_cached"]
        totals[2] += 1
    return [(f"{rule} ({jobs:,} job{'s' if jobs != 1 else ''})", calls, cached)
            for rule, (calls, cached, jobs) in by_rule.items()]


def _card_links(target: str, here: str) -> list[dict[str, str]]:
    links = []
    for label, path in zip(("card", "json"), card_paths(target)):
        if os.path.exists(path):
            links.append({"label": label, "href": quote(os.path.relpath(os.path.abspath(path), here))})
    return links


def loss_curves(decisions: list[Decision]) -> list[dict[str, Any]]:
    """Train/eval loss series of every checkpoint folder that has a metrics.parquet."""
    curves = []
    for d in decisions:
        for path in d.job.output_paths:
            metrics = os.path.join(path, METRICS)
            if not os.path.isfile(metrics):
                continue
            import pyarrow.parquet as pq  # only for projects that trained something

            table = pq.read_table(metrics).to_pydict()
            steps = table.get("step", [])
            series = []
            for column, name in (("train_loss", "train loss"), ("eval_loss", "eval loss")):
                points = [(s, v) for s, v in zip(steps, table.get(column, [])) if s is not None and v is not None]
                if points:
                    series.append((name, [p[0] for p in points], [p[1] for p in points]))
            if series:
                curves.append({"target": path, "svg": line_plot_svg(f"{d.job.name}: {path}", series)})
    return curves


def data_samples(decisions: list[Decision], state: State, root: str) -> list[dict[str, Any]]:
    """The first rows of each built table target; for a prompt rule's target, each row's exact messages.

    The messages come from replaying the rule on its first input rows against the row cache only
    (`preview.first_rows(call_model=False)`): a row gets them when the cached generation for them is the
    row's value of the generated column, so they are the messages that produced it. A rule whose output
    rows do not follow its input rows (filters, rankings, pairwise judges) gets its first requests listed.
    """
    from dreammake import preview
    from dreammake.errors import DreamError
    from dreammake.show import read_rows

    samples = []
    for d in decisions:
        job = d.job
        for path in job.output_paths:
            if len(samples) == DATA_TARGETS or not os.path.isfile(path):
                continue
            try:
                table, total = read_rows(path, SAMPLE_ROWS)
            except DreamError:  # a file target that is not a table
                continue
            step = preview.prompt_step(job)
            sample = {"target": path, "job": job.name, "total": total, "columns": table.column_names,
                      "generated": _generated_columns(step) if step else [], "rows": [], "requests": [],
                      "note": None}
            prompted: list[preview.Prompted] = []
            if step is not None and len(job.outputs) == 1:
                try:
                    prompted = preview.first_rows(step, preview.job_context(job, state, root), SAMPLE_ROWS,
                                                  call_model=False)
                except (DreamError, OSError, ImportError) as exc:  # e.g. a retrieval rule's embedder is gone
                    sample["note"] = f"messages not shown: {exc}"
            by_row = {p.row: p for p in prompted if p.text is not None}
            for i, row in enumerate(table.to_pylist()):
                found = by_row.get(i)
                matched = found is not None and step is not None and row.get(step.output_column) == found.text
                sample["rows"].append({"cells": [_cell(v) for v in row.values()],
                                       "messages": found.messages if matched else None})
            if prompted and not any(r["messages"] for r in sample["rows"]):
                sample["requests"] = [p for p in prompted if p.text is not None]
                if not sample["requests"]:
                    sample["note"] = ("the messages of these rows are not in the row cache (the rule changed"
                                      " since this target was built, or the cache was pruned)")
            samples.append(sample)
    return samples


def _generated_columns(step: Any) -> list[str]:
    from dreammake.rules.prompts import schema_fields

    return [step.output_column, *schema_fields(step.schema)]


def _cell(value: Any) -> str:
    """A value as text (nested values as JSON), cut after CELL_CHARS characters."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= CELL_CHARS:
        return text
    return f"{text[:CELL_CHARS]}… (+{len(text) - CELL_CHARS:,} characters)"


def recent_runs(state: State) -> list[dict[str, Any]]:
    """The last runs from the state's `runs` table, newest first (command lines scrubbed of credentials,
    also those recorded before scrubbing existed)."""
    runs = state.runs(RUNS_SHOWN)
    for run in runs:
        run["command"] = scrub_command(run["command"] or "")
    return runs


def render_report(graph: Graph, decisions: list[Decision], state: State, output: str, title: str) -> str:
    """The report's HTML (card links are relative to `output`'s folder)."""
    from dreammake import __version__
    from dreammake.cards.render import jinja_env

    here = os.path.dirname(os.path.abspath(output))
    details = state.target_details()
    rows = job_rows(decisions, details, here)
    status = {r["job"]: r["status"] for r in rows}
    totals = {k: sum(r[k] or 0 for r in rows) for k in (*LLM_STATS, "duration_s")}
    spend = llm_spend(rows)
    html = jinja_env(html=True).get_template("report.html.j2").render(
        title=title, version=__version__, generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        dag=dag_svg(graph.to_networkx(), status), rows=rows, totals=totals,
        bars=bars_svg(spend) if spend else None, curves=loss_curves(decisions), runs=recent_runs(state),
        data=data_samples(decisions, state, str(state.root)), sample_rows=SAMPLE_ROWS, data_targets=DATA_TARGETS,
        counts={s: sum(1 for r in rows if r["status"] == s) for s in ("up-to-date", "stale", "missing")})
    return redact(html)


def write_report(graph: Graph, decisions: list[Decision], state: State, output: str, title: str) -> str:
    """Render the report and write it to `output`; returns the path."""
    from dreammake.cards.render import write_text

    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    write_text(output, render_report(graph, decisions, state, output, title))
    return output
