"""The `dreammake` command line. It parses arguments and delegates to `dreammake.project`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from dreammake import __version__
from dreammake.console import Console
from dreammake.errors import DreamError

EPILOG = """\b
Examples:
  dreammake                          build `all` (or every final target)
  dreammake targets/tweets.parquet   build one target and what it needs
  dreammake -n                       show the plan: one line per job, with the reason
  dreammake -q targets/x.parquet     exit 0 if up to date, 1 if stale (like make -q)
  dreammake -j 4 --config n=1000     four jobs at once, with a config value overridden
  dreammake show targets/x.parquet   look at the rows of a target (a table; --json for JSON lines)
  dreammake status | graph | clean   inspect, draw, remove outputs
"""


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command takes: the Dreamfile, config overrides, locking and debug output."""
    fn = click.option("--debug", is_flag=True, callback=_remember_debug, help="Show tracebacks for errors.")(fn)
    fn = click.option("--no-wait", is_flag=True, help="Exit with code 2 instead of waiting when another"
                      " dreammake holds this project.")(fn)
    fn = click.option("--config", "config", multiple=True, metavar="KEY=VALUE",
                      help="Override a `config` value of the Dreamfile (repeatable; JSON values parse).")(fn)
    fn = click.option("-f", "--file", "dreamfile", default="Dreamfile", show_default=True, metavar="FILE",
                      help="The Dreamfile to read.")(fn)
    return fn


_DEBUG = "dreammake.debug"  # ctx.meta key (shared by all nested contexts): --debug was given


def _remember_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG] = True
    return value


def _project(ctx_kwargs: dict[str, Any], console: Console | None = None, read_only: bool = False) -> Any:
    """The Project of a command's common options (they are popped from `ctx_kwargs`); `console` defaults to
    plain logging on stderr."""
    from dreammake.project import Options, Project, parse_assignments

    options = Options(ctx_kwargs.pop("dreamfile"), parse_assignments(ctx_kwargs.pop("config"), "--config"),
                      wait=not ctx_kwargs.pop("no_wait"), debug=ctx_kwargs.pop("debug"), read_only=read_only,
                      one_shot=isinstance(click.get_current_context().find_root().obj, EntryPoint))
    return Project(options, console or Console(debug=options.debug))


USER_ERRORS = (DreamError, click.UsageError, OSError)  # a user's mistake (or a file that cannot be read/written)


def _fail(exc: BaseException, debug: bool) -> NoReturn:
    """The one error path of every command: one line on stderr and exit 2 (with --debug, the traceback first)."""
    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, DreamError):
        text = exc.one_line()
    elif isinstance(exc, click.UsageError):
        text = exc.format_message() + (f" — see `{exc.ctx.command_path} --help`" if exc.ctx else "")
    elif isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc)
    Console().error(text)
    sys.exit(DreamError.exit_code)


class DreamCommand(click.Command):
    """A dreammake command: a USER_ERRORS exception raised while it runs (for a group: while its subcommand is
    parsed and run) ends as one `error:` line and exit 2, however the command is reached."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            _fail(exc, ctx.meta.get(_DEBUG, False))


class CommandGroup(DreamCommand, click.Group):
    """A group of DreamCommands (`@group.command` makes one; `@group.group` makes another CommandGroup)."""

    command_class = DreamCommand


CommandGroup.group_class = CommandGroup


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
              " e.g. --resources gpus=2 (default gpus: the visible GPUs).")
@click.option("--executor", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
              help="Where jobs run: threads in this process, or one Slurm batch job each (sbatch; prompt rules"
              " stay here). Config keys slurm_args and slurm_poll_s tune it.")
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
    try:
        from dreammake.project import parse_assignments

        limits = parse_assignments(resources, "--resources")
        with _project(common, console, read_only=dry_run or question) as project:
            graph = project.graph(list(targets), until)
            planner = project.planner(graph, list(forced), forceall)
            decisions = planner.plan()
            stale = [d for d in decisions if d.stale and not d.job.rule.is_phony]
            if question or dry_run:
                _allow_fast_exit()
            if question:
                sys.exit(1 if stale else 0)
            if dry_run:
                _print_plan(decisions, stale)
                return
            if not stale:
                console.line("done", "everything is up to date")
            else:
                summary = project.build(planner, decisions, jobs, keep_going, limits, max_cost, jobserver,
                                        executor)
            if depfile:
                project.write_depfiles(graph)
        if stale:
            _report(console, summary, len(stale))
        else:
            _allow_fast_exit()
    except KeyboardInterrupt:
        console.error("interrupted; finished targets are kept")
        os._exit(130)


class EntryPoint:
    """What the `dreammake` executable learns from the command it ran (click's `obj`)."""

    fast_exit = False


def _allow_fast_exit() -> None:
    """Mark this run as having started no job and no model, so the process may skip interpreter teardown."""
    entry = click.get_current_context().find_root().obj
    if isinstance(entry, EntryPoint):
        entry.fast_exit = True


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
    with _project(common, read_only=True) as project:
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


@main.command("graph")
@click.argument("targets", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "png", "svg"]), default="dot",
              show_default=True, help="dot/mermaid text, or png/svg drawn by Graphviz's `dot`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@common_options
def graph_cmd(targets: tuple[str, ...], fmt: str, output: str | None, **common: Any) -> None:
    """Draw the job graph (sources, jobs and their edges)."""
    from dreammake import drawing

    with _project(common) as project:
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
    with _project(common) as project:
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

    with _project(common, read_only=True) as project:
        path = show.table_path(project.workflow, target)
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    table, total = show.read_rows(path, limit, names, sample)
    show.print_rows(table, total, path, sys.stdout, as_json)


@main.group("cache")
def cache_group() -> None:
    """Inspect and manage the LLM row cache (.dreammake/state.duckdb, table llm_cache)."""


def _with_state(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @click.option("--no-wait", is_flag=True, help="Exit with code 2 if another dreammake holds the project.")
    @click.option("--debug", is_flag=True, expose_value=False, callback=_remember_debug,
                  help="Show tracebacks for errors.")
    @functools.wraps(fn)
    def wrapper(no_wait: bool, **kwargs: Any) -> None:
        from pathlib import Path

        from dreammake.state import State

        state = State(Path.cwd(), wait=not no_wait)
        try:
            fn(state, Console(), **kwargs)
        finally:
            state.close()

    return wrapper


@cache_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_with_state
def cache_stats(state: Any, console: Console, as_json: bool) -> None:
    """Cached generations per model: entries, tokens, cost."""
    from dreammake.llm import cache

    data = cache.stats(state.db)
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
@_with_state
def cache_prune(state: Any, console: Console, days: float | None, model: str | None, everything: bool) -> None:
    """Delete cached generations (say which: --older-than, --model, or --all)."""
    from dreammake.llm import cache

    if days is None and model is None and not everything:
        raise DreamError("say what to prune", hint="use --older-than DAYS, --model HASH or --all")
    console.line("done", f"{cache.prune(state.db, days, model):,} cached row(s) deleted")


@cache_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@_with_state
def cache_export(state: Any, console: Console, path: str) -> None:
    """Write the cache to a Parquet file (share it with `dreammake cache import`)."""
    from dreammake.llm import cache

    console.line("done", f"{cache.export(state.db, path):,} row(s) written to {path}")


@cache_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_with_state
def cache_import(state: Any, console: Console, path: str) -> None:
    """Merge a cache file written by `dreammake cache export`."""
    from dreammake.llm import cache

    console.line("done", f"{cache.import_rows(state.db, path):,} new row(s) imported from {path}")


@main.command("makefile")
@click.argument("targets", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@common_options
def makefile_cmd(targets: tuple[str, ...], output: str | None, **common: Any) -> None:
    """Print make rules for the jobs (`dreammake makefile > dreammake.mk`, then `include dreammake.mk`):
    each target's prerequisites are its inputs and the Dreamfile; each recipe asks dreammake for it."""
    from dreammake.makeint import makefile

    dreamfile = common["dreamfile"]
    with _project(common) as project:
        text = makefile(project.graph(list(targets)), dreamfile)
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


from dreammake.cli_cards import COMMANDS  # noqa: E402 - these commands use common_options defined above

for _command in COMMANDS:
    main.add_command(_command)
