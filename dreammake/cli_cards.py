"""Commands about what a project made: `card`, `fingerprint`, `diff`, `publish`, `export`, `report`.

They parse arguments and delegate to `dreammake.cards`, `dreammake.publish` and `dreammake.report`.
Attach them to the main group with `for cmd in COMMANDS: main.add_command(cmd)`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from dreammake.cli_common import DreamCommand, common_options, project_of
from dreammake.errors import DreamError

TEMPLATE_HELP = "A Jinja card template of your own (it may extend dataset_card.md.j2 or model_card.md.j2)."
LICENSE_HELP = "The license to declare (a Hub license id), instead of the one derived from upstream models and data."


def _template_option(fn: Any) -> Any:
    return click.option("--template", type=click.Path(exists=True, dir_okay=False), help=TEMPLATE_HELP)(fn)


def _license_option(fn: Any) -> Any:
    return click.option("--license", "license_id", metavar="ID", help=LICENSE_HELP)(fn)


def _requested(project: Any, target: str) -> tuple[Any, Any]:
    """The graph for one target (a path or a rule name) and its job."""
    graph = project.graph([target])
    return graph, graph.requested[0]


def _emit(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


@click.command("card", cls=DreamCommand)
@click.argument("target")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True,
              help="The README.md card, or the machine-readable JSON card.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@_template_option
@_license_option
@common_options
def card(target: str, fmt: str, output: str | None, template: str | None, license_id: str | None,
         **common: Any) -> None:
    """Print the card of TARGET: its lineage (rules, models, datasets, fingerprints, spend) and Hub metadata."""
    from dreammake.cards.build import build_card
    from dreammake.cards.render import card_json, render_markdown

    with project_of(common) as project:
        graph, job = _requested(project, target)
        if job.rule.is_phony:
            raise DreamError(f"{target} is an aggregate rule with no outputs", hint="ask for one of its targets")
        data = build_card(graph, project.state, job, license=license_id)
    _emit(render_markdown(data, template) if fmt == "md" else card_json(data), output)


@click.command("fingerprint", cls=DreamCommand)
@click.argument("target")
@click.option("--tree", is_flag=True, help="Also print the fingerprint of every upstream job and source file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the fingerprint and every upstream node.")
@common_options
def fingerprint(target: str, tree: bool, as_json: bool, **common: Any) -> None:
    """Print the recursive fingerprint of TARGET: it covers its rule and everything upstream, built or not."""
    from dreammake.cards import recipe

    with project_of(common) as project:
        graph, job = _requested(project, target)
        nodes = recipe.fingerprints(graph, project.planner(graph))
    roots = [job.name] if job.outputs else [d.name for d in job.deps if d.name in nodes]
    if as_json:
        click.echo(json.dumps({"target": target, "fingerprints": {r: nodes[r].fingerprint for r in roots},
                               "nodes": [n.to_dict() for n in nodes.values()]}, indent=2))
        return
    for root in roots:
        lines = recipe.tree(nodes, root) if tree else [f"{nodes[root].fingerprint}  {root}"]
        click.echo("\n".join(lines))


@contextlib.contextmanager
def _inside(folder: str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


@click.command("diff", cls=DreamCommand)
@click.argument("other", type=click.Path(exists=True, file_okay=False))
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one record per job.")
@common_options
def diff(other: str, targets: tuple[str, ...], as_json: bool, **common: Any) -> None:
    """Compare this workflow with the one in OTHER (same Dreamfile name) job by job, by recursive fingerprint.

    Says which jobs differ, where they first diverge and which component changed (kind, code, params,
    model, inputs). Exit 0 when everything matches, 1 when something differs."""
    from dreammake.cards import recipe

    sides = []
    for folder in (os.getcwd(), other):  # one after the other: both Dreamfiles share a file name
        with _inside(folder), project_of(dict(common)) as project:
            graph = project.graph(list(targets))
            sides.append(recipe.fingerprints(graph, project.planner(graph)))
    diffs = recipe.compare(*sides)
    first = recipe.first_divergence(diffs)
    if as_json:
        click.echo(json.dumps({"same": first is None, "first_divergence": first.to_dict() if first else None,
                               "jobs": [d.to_dict() for d in diffs]}, indent=2))
    else:
        for d in diffs:
            click.echo(f"{d.status:<10} {d.job}" + (f"  {d.detail}" if d.detail else ""))
        if first is None:
            click.echo("the workflows compute the same targets")
        else:
            click.echo(f"first divergence: {first.job} ({first.detail or first.status})")
    sys.exit(0 if first is None else 1)


@click.command("publish", cls=DreamCommand)
@click.argument("target")
@click.option("--repo", "repo_id", required=True, metavar="ORG/NAME", help="The Hub repository to create or update.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; upload nothing.")
@_template_option
@_license_option
@common_options
def publish(target: str, repo_id: str, private: bool, dry_run: bool, template: str | None, license_id: str | None,
            **common: Any) -> None:
    """Upload TARGET to the Hugging Face Hub: a dataset (Parquet splits) or a checkpoint, with its cards.

    The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT picks another Hub."""
    from dreammake import publish as publishing

    publishing.check_repo_id(repo_id)
    with project_of(common) as project:
        graph, job = _requested(project, target)
        bundle = publishing.make_bundle(graph, project.state, job, repo_id, template, license_id)
    if dry_run:
        click.echo(f"would upload to {bundle.repo_type} repo {repo_id}:")
        click.echo("\n".join(publishing.describe(bundle)))
        return
    url = publishing.publish(bundle, repo_id, private)
    project.console.line("done", f"published {len(bundle.files)} file(s) of {bundle.name} to {repo_id}: {url}")


@click.command("export", cls=DreamCommand)
@click.argument("target")
@click.argument("folder", type=click.Path(file_okay=False))
@_template_option
@_license_option
@common_options
def export(target: str, folder: str, template: str | None, license_id: str | None, **common: Any) -> None:
    """Write the folder `publish` would upload for TARGET into FOLDER (cards included)."""
    from dreammake import publish as publishing

    with project_of(common) as project:
        graph, job = _requested(project, target)
        bundle = publishing.make_bundle(graph, project.state, job, None, template, license_id)
    written = publishing.export(bundle, folder)
    project.console.line("done", f"{len(written)} file(s) of {bundle.name} written to {folder}")


@click.command("report", cls=DreamCommand)
@click.argument("targets", nargs=-1)
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the HTML file.")
@common_options
def report(targets: tuple[str, ...], output: str, **common: Any) -> None:
    """Write one self-contained HTML report: DAG, timings, rows, LLM calls and cache hits, cost, loss curves."""
    from dreammake.report import write_report

    with project_of(common) as project:
        graph = project.graph(list(targets))
        decisions = project.planner(graph).plan()
        write_report(graph, decisions, project.state, output, project.root.name or "dreammake")
    project.console.line("done", f"report written to {output}")


COMMANDS = (card, fingerprint, diff, publish, export, report)
