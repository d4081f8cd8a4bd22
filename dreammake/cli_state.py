"""Recovery commands: `dreammake state rebuild` and `dreammake cache rebuild`.

Build state and paid results live in separate files, so each can be rebuilt without the other:
the state from the targets' own build metadata (`dreammake.adopt`), the row cache from the spools.
Attach them with `main.add_command(state_group)` and `cache_group.add_command(cache_rebuild)`.
"""

from __future__ import annotations

import os
from typing import Any

import click

from dreammake.cli import _fail, _project, _with_state, common_options
from dreammake.console import Console
from dreammake.errors import DreamError


@click.group("state")
def state_group() -> None:
    """Recover the build state (.dreammake/state.duckdb)."""


@state_group.command("rebuild")
@click.argument("targets", nargs=-1)
@common_options
def state_rebuild(targets: tuple[str, ...], **common: Any) -> None:
    """Set the state file aside (state.duckdb.damaged) and start a fresh one that adopts every existing
    target of TARGETS (default: `all`, else every final target) whose build metadata matches its plan.
    The row cache is kept; jobs that remain stale rerun on the next build."""
    debug = common["debug"]
    console = Console(debug=debug)
    try:
        with _project(common, console) as project:
            kept = project.state.set_aside()
            kept = kept and os.path.relpath(kept)
            planner = project.planner(project.graph(list(targets)))
            stale = [d for d in planner.plan() if d.stale and not d.job.rule.is_phony]
        where = f"; the old file is {kept}" if kept else ""
        console.line("done", f"fresh state: {planner.adopted_total} target(s) adopted, {len(stale)} job(s) left"
                             f" to run{where}")
    except DreamError as exc:
        _fail(console, exc, debug)


@click.command("rebuild")
@_with_state
def cache_rebuild(state: Any, console: Console) -> None:
    """Set the cache file aside (cache.duckdb.damaged) and rebuild it from the spools in .dreammake/spool/,
    keeping whatever rows of the old file can still be read."""
    from dreammake.llm import cache

    rows, salvaged, kept = cache.rebuild(state.dir)
    where = f"; the old file is {kept}" if kept else ""
    console.line("done", f"row cache rebuilt: {rows:,} row(s) from spools, {salvaged:,} more from the old"
                         f" file{where}")
