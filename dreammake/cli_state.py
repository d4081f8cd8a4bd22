"""The state and cache commands: `dreammake state rebuild`, `dreammake cache stats|prune|export|import|rebuild`.

Build state and paid results live in separate files, so each can be rebuilt without the other:
the state from the targets' own build metadata (`dreammake.adopt`), the row cache from the spools.
`cli` attaches both groups; the `cache` group also inspects, prunes, exports and imports the row cache.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from dreammake.cli_common import CommandGroup, common_options, project_of, with_state
from dreammake.console import Console
from dreammake.errors import DreamError


@click.group("state", cls=CommandGroup)
def state_group() -> None:
    """Recover the build state (.dreammake/state.duckdb)."""


@state_group.command("rebuild")
@click.argument("targets", nargs=-1)
@common_options
def state_rebuild(targets: tuple[str, ...], **common: Any) -> None:
    """Set the state file aside (state.duckdb.damaged) and start a fresh one that adopts every existing
    target of TARGETS (default: `all`, else every final target) whose build metadata matches its plan.
    The row cache is kept; jobs that remain stale rerun on the next build."""
    console = Console(debug=common["debug"])
    with project_of(common, console) as project:
        kept = project.state.set_aside()
        kept = kept and os.path.relpath(kept)
        planner = project.planner(project.graph(list(targets)))
        stale = [d for d in planner.plan() if d.stale and not d.job.rule.is_phony]
    where = f"; the old file is {kept}" if kept else ""
    console.line("done", f"fresh state: {planner.adopted_total} target(s) adopted, {len(stale)} job(s) left"
                         f" to run{where}")


@click.group("cache", cls=CommandGroup)
def cache_group() -> None:
    """Inspect and manage the LLM row cache (.dreammake/cache.duckdb, table llm_cache)."""


@cache_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_state
def cache_stats(state: Any, console: Console, as_json: bool) -> None:
    """Cached generations per model: entries, tokens, cost."""
    from dreammake.llm import cache

    data = cache.stats(state.cache_db)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{data['entries']:,} cached generation(s)")
    for m in data["models"]:
        click.echo(f"  model {m['model'][:12]}  {m['entries']:>9,} rows  {m['prompt_tokens']:>11,} prompt tokens"
                   f"  {m['completion_tokens']:>11,} completion tokens  ${m['cost_usd']:.4f}")


@cache_group.command("prune")
@click.option("--older-than", "days", type=float, metavar="DAYS", help="Only rows cached more than DAYS ago.")
@click.option("--model", metavar="HASH", help="Only rows of this model (identity hash prefix, see `cache stats`).")
@click.option("--all", "everything", is_flag=True, help="Delete every cached row.")
@with_state
def cache_prune(state: Any, console: Console, days: float | None, model: str | None, everything: bool) -> None:
    """Delete cached generations (say which: --older-than, --model, or --all)."""
    from dreammake.llm import cache

    if days is None and model is None and not everything:
        raise DreamError("say what to prune", hint="use --older-than DAYS, --model HASH or --all")
    console.line("done", f"{cache.prune(state.cache_db, days, model):,} cached row(s) deleted")


@cache_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@with_state
def cache_export(state: Any, console: Console, path: str) -> None:
    """Write the cache to a Parquet file (share it with `dreammake cache import`)."""
    from dreammake.llm import cache

    console.line("done", f"{cache.export(state.cache_db, path):,} row(s) written to {path}")


@cache_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_state
def cache_import(state: Any, console: Console, path: str) -> None:
    """Merge a cache file written by `dreammake cache export`."""
    from dreammake.llm import cache

    console.line("done", f"{cache.import_rows(state.cache_db, path):,} new row(s) imported from {path}")


@cache_group.command("rebuild")
@with_state
def cache_rebuild(state: Any, console: Console) -> None:
    """Set the cache file aside (cache.duckdb.damaged) and rebuild it from the spools in .dreammake/spool/,
    keeping whatever rows of the old file can still be read."""
    from dreammake.llm import cache

    rows, salvaged, kept = cache.rebuild(state.dir)
    where = f"; the old file is {kept}" if kept else ""
    console.line("done", f"row cache rebuilt: {rows:,} row(s) from spools, {salvaged:,} more from the old"
                         f" file{where}")
