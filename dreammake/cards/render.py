"""Rendering cards with the Jinja templates in `templates/`, and writing them next to targets.

The engine calls `write_built_cards(graph, state, job_names)` after a run; `write_cards` does one
target. A user's own template (`--template FILE`) may `{% extends "dataset_card.md.j2" %}` or
`{% include "_lineage.md.j2" %}`: the built-in templates stay on the search path.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dreammake.cards import card_paths
from dreammake.cards.build import build_card, splits
from dreammake.cards.secrets import redact
from dreammake.errors import DreamError
from dreammake.paths import normalize

if TYPE_CHECKING:
    import jinja2

    from dreammake.graph import Graph, Job
    from dreammake.state import State

TEMPLATES = {"dataset": "dataset_card.md.j2", "model": "model_card.md.j2"}


def templates_dir() -> str:
    """The folder of the built-in templates (the `dreammake.templates` package)."""
    import dreammake.templates

    return os.path.dirname(dreammake.templates.__file__)


@functools.lru_cache(maxsize=8)
def jinja_env(extra_dir: str | None = None, html: bool = False) -> jinja2.Environment:
    """A Jinja environment over the built-in templates (and `extra_dir` first), with the card filters."""
    import jinja2

    dirs = [d for d in (extra_dir, templates_dir()) if d]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(dirs), autoescape=html, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(yaml=to_yaml, json=to_json, num=number, money=money, short=lambda h: (h or "")[:12])
    return env


def to_yaml(data: Any) -> str:
    """Block-style YAML (the Hub's front matter style), keys in the given order."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def number(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def money(value: Any) -> str:
    return "–" if value is None else f"${value:,.4f}"


def citations(card: dict[str, Any]) -> list[str]:
    """The distinct citations of every upstream model and dataset."""
    lineage = card["lineage"]
    found = [x.get("citation") for x in [*lineage["models"], *lineage["datasets"]]]
    return list(dict.fromkeys(c for c in found if c))


def render_markdown(card: dict[str, Any], template: str | None = None) -> str:
    """The README.md of a card, from the built-in template for its type or from the file `template`."""
    if template is None:
        tmpl = jinja_env().get_template(TEMPLATES[card["type"]])
    else:
        try:
            with open(template, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise DreamError(f"cannot read card template {template}: {exc.strerror}") from None
        tmpl = jinja_env(os.path.dirname(os.path.abspath(template))).from_string(text)
    try:
        text = tmpl.render(card=card, lineage=card["lineage"], step=card["lineage"]["steps"][-1],
                           citations=citations(card))
    except Exception as exc:  # jinja2.TemplateError, or a user template's own mistake
        raise DreamError(f"card template {template or TEMPLATES[card['type']]}: {type(exc).__name__}: {exc}") \
            from None
    return redact(text)


def card_json(card: dict[str, Any]) -> str:
    """The machine-readable card (`dreammake-card.json`)."""
    return redact(to_json(card)) + "\n"


def write_text(path: str, text: str) -> None:
    """Write a file atomically (temp file in the same folder, then rename)."""
    tmp = f"{path}.dmtmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_cards(graph: Graph, state: State, target: str, template: str | None = None,
                details: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Write the README.md and dreammake-card.json of a built target (inside a folder, beside a file).

    Returns the paths written."""
    target = normalize(target)
    job = graph.producer.get(target)
    if job is None:
        raise DreamError(f"{target} is not made by any rule of this graph")
    if not os.path.exists(target):
        raise DreamError(f"{target} is not built yet", hint=f"run `dreammake {target}` first")
    md_path, json_path = card_paths(target)
    here = os.path.dirname(md_path)
    files = {split: os.path.relpath(path, here or ".") for split, path in splits(job)}
    card = build_card(graph, state, job, files=files, details=details)
    write_text(md_path, render_markdown(card, template))
    write_text(json_path, card_json(card))
    return [md_path, json_path]


def write_built_cards(graph: Graph, state: State, job_names: Iterable[str], template: str | None = None,
                      all_targets: bool = False) -> list[str]:
    """Cards for the outputs of the named jobs (e.g. `summary.ran` after a build), with one state query.

    A card costs about 3 ms, so by default (`wants_card`) the outputs of built-in rule kinds, final targets and
    checkpoints get one, not the intermediate tables of the Dreamfile's own functions (20,000 of those would
    add a minute to a build); `dreammake card` renders any target on demand."""
    wanted = set(job_names)
    if not all_targets:
        read = {p for j in graph.jobs if not j.rule.is_phony for p in j.input_paths}  # `all` reads nothing
        wanted = {j.name for j in graph.jobs if j.name in wanted and wants_card(j, read)}
    jobs = [j for j in graph.jobs if j.name in wanted and not j.rule.is_phony]
    if not jobs:
        return []
    details = state.target_details()
    written = []
    for job in jobs:
        for path in job.output_paths:
            if os.path.exists(path):
                written.extend(write_cards(graph, state, path, template, details))
    return written


def wants_card(job: Job, read: set[str]) -> bool:
    """Whether a build writes the card of `job`: a checkpoint, a dataset made by a built-in rule kind (prompts,
    judges, sources, data operations: the steps whose models, prompts and sources a card records), or a final
    target (read by no other job of the graph)."""
    from dreammake.actions import Action

    return bool(job.rule.folders) or isinstance(job.rule.action, Action) \
        or not any(p in read for p in job.output_paths)
