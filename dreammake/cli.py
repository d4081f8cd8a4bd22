"""The `dreammake` command line. It parses arguments and delegates to `dreammake.project`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import click

from dreammake import __version__
from dreammake.cli_common import (
    CommandGroup,
    EntryPoint,
    allow_fast_exit,
    common_options,
    project_of,
)
from dreammake.console import Console

EPILOG = """\b
Examples:
  dreammake                          build `all` (or every final target)
  dreammake targets/tweets.parquet   build one target and what it needs
  dreammake -n                       show the plan: one line per job, with the reason
  dreammake -q targets/x.parquet     exit 0 if up to date, 1 if stale (like make -q)
  dreammake -j 4 --config n=1000     four jobs at once, with a config value overridden
  dreammake show targets/x.parquet   look at the rows of a target (a table; --json for JSON lines)
  dreammake preview tweets -n 5      a prompt rule on 5 rows: exact messages and generations (cached)
  dreammake status | graph | clean   inspect, draw, remove outputs
"""


class DreamGroup(CommandGroup):
    """`dreammake [OPTIONS] [TARGETS]` builds; a known command name as the first word runs that command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in ("--help", "-h", "--version"):
            return super().parse_args(ctx, args)
        build_cmd = self.commands["build"]
        takes_value = {opt for p in build_cmd.params if isinstance(p, click.Option) and not p.is_flag
                       and not p.count for opt in p.opts}
        i = 0
        while i < len(args):
            token = args[i]
            if token == "--":
                break
            if token.startswith("-"):
                if token in takes_value:
                    i += 1
                i += 1
                continue
            if token in self.commands:  # `dreammake -f F report ...`: the options belong to the command
                return super().parse_args(ctx, [token, *args[:i], *args[i + 1 :]])
            break
        return super().parse_args(ctx, ["build", *args])

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [TARGETS]... | COMMAND [ARGS]...")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's options, then the build options (`dreammake [OPTIONS] [TARGETS]`), then the commands."""
        click.Command.format_options(self, ctx, formatter)
        build_cmd = self.commands["build"]
        help_option = build_cmd.get_help_option(ctx)
        records = [p.get_help_record(ctx) for p in build_cmd.get_params(ctx)
                   if isinstance(p, click.Option) and p is not help_option]
        with formatter.section("Build options (dreammake [OPTIONS] [TARGETS], or `dreammake build`)"):
            formatter.write_dl(records)
        self.format_commands(ctx, formatter)


@click.group(cls=DreamGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dreammake")
def main() -> None:
    """dreammake: a make-like build tool for LLM workflows.

    Rules in a Dreamfile produce Parquet datasets and model checkpoints. Only jobs whose
    inputs, code, params or models changed are rebuilt, and LLM calls are cached row by row.
    """


def _executor(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """`--executor NAME` must name a registered executor (a one-line error with "did you mean" otherwise)."""
    from dreammake.executors import executor_factory

    executor_factory(name)
    return name


@main.command("build", epilog=EPILOG)
@click.argument("targets", nargs=-1)
@click.option("-n", "--dry-run", is_flag=True, help="Print the plan (rule, outputs, reason per job); run nothing.")
@click.option("-q", "--question", is_flag=True, help="Run nothing; exit 0 if up to date, 1 if anything is stale.")
@click.option("-j", "--jobs", type=click.IntRange(1), help="Jobs to run at once (default 1; under `make -jN`"
              " make's jobserver sets the limit).")
@click.option("-k", "--keep-going", is_flag=True, help="Go on with independent jobs when one fails.")
@click.option("--force", "forced", multiple=True, metavar="TARGET", help="Rebuild this target (repeatable).")
@click.option("-F", "--forceall", is_flag=True, help="Rebuild every job needed for the targets.")
@click.option("--until", metavar="RULE", help="Only build the jobs of RULE and what they need.")
@click.option("--resources", multiple=True, metavar="NAME=N", help="Limit a resource across running jobs,"
              " e.g. --resources gpus=2 (default gpus: the visible GPUs; each GPU job is given its own).")
@click.option("--executor", metavar="NAME", default="local", show_default=True, callback=_executor,
              help="Where jobs run: local (threads in this process), slurm (one Slurm batch job each, by sbatch;"
              " prompt rules stay here, a local model's generation goes to an array job of its shards; config keys"
              " slurm_args and slurm_poll_s tune it), or an executor a plugin registers.")
@click.option("--max-cost", type=float, metavar="USD", help="Stop generating once this run has spent USD on"
              " model calls (finished rows are kept; rerun to continue).")
@click.option("--depfile", is_flag=True, help="Write a make-format TARGET.d beside each requested target"
              " (its source files and the Dreamfile), for `-include` in a Makefile.")
@click.option("--quiet", is_flag=True, help="Only print errors.")
@common_options
def build(targets: tuple[str, ...], dry_run: bool, question: bool, jobs: int, keep_going: bool,
          forced: tuple[str, ...], forceall: bool, until: str | None, resources: tuple[str, ...],
          executor: str, max_cost: float | None, depfile: bool, quiet: bool, **common: Any) -> None:
    """Build TARGETS (paths or rule names; default: rule `all`, else every final target)."""
    from dreammake.makeint import JobServer, make_mode

    mode = make_mode()  # a parent `make -n` / `make -q` running our recipe
    dry_run = dry_run or mode == "dry-run"
    question = question or mode == "question"
    console = Console(quiet=quiet or question, debug=common["debug"])
    jobserver = JobServer.from_environment() if not (dry_run or question) else None
    if jobs is None:
        jobs = 64 if jobserver is not None else 1
    from dreammake.uptodate import NO_RECORD, Recorder, plan_key

    recordable = not (forced or forceall or until or depfile or mode or jobserver or NO_RECORD in os.environ)
    recorder = Recorder() if recordable else None
    key = plan_key(common["dreamfile"], targets, common["config"])
    try:
        from dreammake.project import parse_assignments

        limits = parse_assignments(resources, "--resources")
        read_only = dry_run or question
        with recorder or contextlib.nullcontext(), project_of(common, console, read_only=read_only) as project:
            graph = project.graph(list(targets), until)
            planner = project.planner(graph, list(forced), forceall)
            decisions = planner.plan()
            if recorder is not None:
                recorder.stop()  # what the check depended on is known; the build (if any) is not part of it
            stale = [d for d in decisions if d.stale and not d.job.rule.is_phony]
            if question or dry_run:
                allow_fast_exit()
            if question and stale:
                sys.exit(1)
            if dry_run:
                _print_plan(decisions, stale)
                if stale:
                    return
            elif not stale and not question:
                console.line("done", "everything is up to date")
            elif stale:
                summary = project.build(planner, decisions, jobs, keep_going, limits, max_cost, jobserver,
                                        executor)
            if depfile:
                project.write_depfiles(graph)
        if stale:
            _report(console, summary, len(stale))
        else:
            if recorder is not None:  # the state is closed: its signature is final
                up = sum(1 for d in decisions if not d.job.rule.is_phony)
                recorder.save(key, sorted(main.commands), up, planner.hashed_paths())
            allow_fast_exit()
    except KeyboardInterrupt:
        console.error("interrupted; finished targets are kept")
        os._exit(130)


def run() -> None:
    """The `dreammake` executable. After a command that ran nothing (a plan, `-q`, a no-op build) it leaves
    with `os._exit`: freeing a 20,000-job workflow object by object takes longer than checking it."""
    entry = EntryPoint()
    try:
        main(obj=entry)
    except SystemExit as exc:
        if not entry.fast_exit:
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _print_plan(decisions: list[Any], stale: list[Any]) -> None:
    for d in stale:
        outs = ", ".join(d.job.output_paths)
        click.echo(f"{d.job.name}\t{outs}\t{d.reason}: {d.detail}")
    up = sum(1 for d in decisions if not d.stale and not d.job.rule.is_phony)
    click.echo(f"{len(stale)} job(s) to run, {up} up to date")


def _report(console: Console, summary: Any, planned: int) -> None:
    if summary.interrupted:
        console.error(f"interrupted after {len(summary.ran)} job(s); finished targets are kept")
        os._exit(130)
    parts = [f"{len(summary.ran)} job(s) run"]
    if summary.cut_off:
        parts.append(f"{len(summary.cut_off)} unchanged after rebuilt inputs")
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    if summary.skipped:
        parts.append(f"{len(summary.skipped)} not run because of failures")
    console.line("fail" if summary.failed else "done", ", ".join(parts))
    if summary.failed:
        sys.exit(2)


@main.command("status")
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with a record per target.")
@common_options
def status(targets: tuple[str, ...], as_json: bool, **common: Any) -> None:
    """Show each target: up-to-date / stale / missing, why, its rule, rows, build time and LLM spend."""
    with project_of(common, read_only=True) as project:
        graph = project.graph(list(targets))
        decisions = project.planner(graph).plan()
        details = project.state.target_details([p for d in decisions for p in d.job.output_paths])
    rows = []
    for d in decisions:
        for path in d.job.output_paths:
            rec = details.get(path) or {}
            state = "up-to-date" if not d.stale else "missing" if not os.path.lexists(path) else "stale"
            rows.append({"target": path, "state": state, "reason": d.reason, "detail": d.detail or None,
                         "rule": d.job.rule.name, "rows": rec.get("rows"),
                         "built_at": rec["built_at"].isoformat() if rec.get("built_at") else None,
                         "duration_s": rec.get("duration_s"), **(rec.get("stats") or {})})
    if as_json:
        click.echo(json.dumps({"targets": rows}, indent=2, default=str))
        return
    for row in rows:
        rows_txt = f"{row['rows']:,} rows" if row["rows"] is not None else ""
        why = f" ({row['detail']})" if row["detail"] else ""
        click.echo(f"{row['state']:<11} {row['target']}  [{row['rule']}] {rows_txt}{why}")
        for key, what in (("served_models", "served models"), ("system_fingerprints", "system fingerprints")):
            if len(row.get(key) or ()) > 1:
                click.echo(f"warning: {row['target']}'s rows came from {len(row[key])} {what}: {', '.join(row[key])}")


@main.command("graph")
@click.argument("targets", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "png", "svg"]), default="dot",
              show_default=True, help="dot/mermaid text, or png/svg drawn by Graphviz's `dot`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@common_options
def graph_cmd(targets: tuple[str, ...], fmt: str, output: str | None, **common: Any) -> None:
    """Draw the job graph (sources, jobs and their edges)."""
    from dreammake import drawing

    with project_of(common) as project:
        data = drawing.render(project.graph(list(targets)), fmt)
    if output:
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(output, mode) as f:
            f.write(data)
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        click.echo(data, nl=False)


@main.command("clean")
@click.argument("targets", nargs=-1)
@common_options
def clean(targets: tuple[str, ...], **common: Any) -> None:
    """Remove built outputs (of TARGETS and what they need; default: everything) and their records."""
    with project_of(common) as project:
        removed = project.clean(project.graph(list(targets)))
    for path in removed:
        project.console.line("skip", f"removed {path}")
    project.console.line("done", f"{len(removed)} output(s) removed")


@main.command("show")
@click.argument("target")
@click.option("-n", "--rows", "limit", type=click.IntRange(0), default=20, show_default=True, metavar="N",
              help="How many rows to print.")
@click.option("--columns", metavar="A,B", help="Only these columns (comma-separated), in this order.")
@click.option("--sample", is_flag=True, help="Random rows (in file order) instead of the first ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, values complete (tables cut long cells).")
@common_options
def show_cmd(target: str, limit: int, columns: str | None, sample: bool, as_json: bool, **common: Any) -> None:
    """Print rows of a Parquet TARGET (a path or rule name; or a Parquet source file): a table on a terminal,
    tab-separated text otherwise."""
    from dreammake import show

    with project_of(common, read_only=True) as project:
        path = show.table_path(project.workflow, target)
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    table, total = show.read_rows(path, limit, names, sample)
    show.print_rows(table, total, path, sys.stdout, as_json)


@main.command("preview")
@click.argument("target", metavar="RULE")
@click.option("-n", "--rows", "limit", type=click.IntRange(1), default=5, show_default=True, metavar="N",
              help="How many input rows to run.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines: row, messages, generation, cached.")
@common_options
def preview_cmd(target: str, limit: int, as_json: bool, **common: Any) -> None:
    """Run a prompt RULE (a rule name or its output) on its first N input rows and print the exact messages
    and the generations. Nothing is written but the row cache: the build reuses these rows."""
    from dreammake import preview

    console = Console(debug=common["debug"])
    with project_of(common, console) as project:
        job = preview.prompt_job(project.workflow, target)
        ctx = preview.job_context(job, project.state, str(project.root), console)
        console.start_progress(1)
        try:
            rows = preview.first_rows(preview.prompt_step(job), ctx, limit)
        finally:
            console.stop_progress()
            for model in project.workflow.models:
                model.close()
    preview.print_rows(rows, sys.stdout, as_json)
    console.line("done", preview.summary(job, rows))


@main.command("makefile")
@click.argument("targets", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@common_options
def makefile_cmd(targets: tuple[str, ...], output: str | None, **common: Any) -> None:
    """Print make rules for the jobs (`dreammake makefile > dreammake.mk`, then `include dreammake.mk`):
    each target's prerequisites are its inputs and the Dreamfile; each recipe asks dreammake for it."""
    from dreammake.makeint import makefile

    dreamfile = common["dreamfile"]
    with project_of(common) as project:
        text = makefile(project.graph(list(targets)), dreamfile)
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


def _register() -> None:
    """Attach the commands that live in their own modules (cards and publishing; state and cache; Hub downloads)."""
    from dreammake.cli_cards import COMMANDS
    from dreammake.cli_fetch import fetch_cmd
    from dreammake.cli_state import cache_group, state_group

    for command in (*COMMANDS, state_group, cache_group, fetch_cmd):
        main.add_command(command)


_register()
