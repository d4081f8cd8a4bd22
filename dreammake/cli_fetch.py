"""`dreammake fetch`: download Hub models and datasets into the local cache (and pin them) for offline runs."""

from __future__ import annotations

from typing import Any

import click

from dreammake.cli_common import DreamCommand, common_options, project_of


def hub_refs_of(graph: Any) -> list[Any]:
    """The Hub models (`llm("ORG/NAME")`) and datasets (`rules.hf_dataset("ORG/NAME")`) a job graph's rules use."""
    from dreammake.hub import HubRef, model_ref
    from dreammake.llm.handle import LLM
    from dreammake.rules.sources import HFDataset

    found: dict[HubRef, None] = {}
    for job in graph.jobs:
        action = job.rule.action
        if isinstance(action, HFDataset) and not action.local:
            found[HubRef("dataset", action.name, action.revision)] = None
        for value in (vars(action) if hasattr(action, "execute") else {}).values():
            if isinstance(value, LLM) and isinstance(value.spec, str) and value.target is None:
                ref = model_ref(value.spec)
                if ref is not None:
                    found[ref] = None
    return list(found)


@click.command("fetch", cls=DreamCommand)
@click.argument("targets", nargs=-1)
@common_options
def fetch_cmd(targets: tuple[str, ...], **common: Any) -> None:
    """Download Hub repos into the local cache and pin them to the Hub's current commit, so later runs (offline too)
    use that commit. Each argument is hf:ORG/NAME[@REV] (a model), hf:datasets/ORG/NAME[@REV] (a dataset), or a
    target (or rule name) whose Hub models and datasets are fetched; with none, those of the default targets."""
    from dreammake.hub import fetch, parse_fetch_spec

    refs = [parse_fetch_spec(t) for t in targets if t.startswith("hf:")]
    others = [t for t in targets if not t.startswith("hf:")]
    if others or not targets:
        with project_of(common, read_only=True) as project:
            refs += hub_refs_of(project.graph(others))
    if not refs:
        click.echo("nothing to fetch: no Hub model or dataset is used")
    for ref in refs:
        commit = fetch(ref)
        click.echo(f"{ref.spec}: pinned to {commit}")
