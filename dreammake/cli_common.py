"""What every dreammake command shares: the common options, the project they open, the one error path
(`DreamCommand`), and what the executable learns from a command (`EntryPoint`). A leaf of the CLI layer:
`cli`, `cli_cards` and `cli_state` import it, never each other."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from dreammake.console import Console
from dreammake.errors import DreamError


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command takes: the Dreamfile, config overrides, locking and debug output."""
    fn = click.option("--debug", is_flag=True, callback=remember_debug, help="Show tracebacks for errors.")(fn)
    fn = click.option("--no-wait", is_flag=True, help="Exit with code 2 instead of waiting when another"
                      " dreammake holds this project.")(fn)
    fn = click.option("--config", "config", multiple=True, metavar="KEY=VALUE",
                      help="Override a `config` value of the Dreamfile (repeatable; JSON values parse).")(fn)
    fn = click.option("-f", "--file", "dreamfile", default="Dreamfile", show_default=True, metavar="FILE",
                      help="The Dreamfile to read.")(fn)
    return fn


_DEBUG = "dreammake.debug"  # ctx.meta key (shared by all nested contexts): --debug was given


def remember_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG] = True
    return value


def project_of(ctx_kwargs: dict[str, Any], console: Console | None = None, read_only: bool = False) -> Any:
    """The Project of a command's common options (they are popped from `ctx_kwargs`); `console` defaults to
    plain logging on stderr."""
    from dreammake.project import Options, Project, parse_assignments

    options = Options(ctx_kwargs.pop("dreamfile"), parse_assignments(ctx_kwargs.pop("config"), "--config"),
                      wait=not ctx_kwargs.pop("no_wait"), debug=ctx_kwargs.pop("debug"), read_only=read_only,
                      one_shot=isinstance(click.get_current_context().find_root().obj, EntryPoint))
    return Project(options, console or Console(debug=options.debug))


USER_ERRORS = (DreamError, click.UsageError, OSError)  # a user's mistake (or a file that cannot be read/written)


def fail(exc: BaseException, debug: bool) -> NoReturn:
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
            fail(exc, ctx.meta.get(_DEBUG, False))


class CommandGroup(DreamCommand, click.Group):
    """A group of DreamCommands (`@group.command` makes one; `@group.group` makes another CommandGroup)."""

    command_class = DreamCommand


CommandGroup.group_class = CommandGroup


class EntryPoint:
    """What the `dreammake` executable learns from the command it ran (click's `obj`)."""

    fast_exit = False


def allow_fast_exit() -> None:
    """Mark this run as having started no job and no model, so the process may skip interpreter teardown."""
    entry = click.get_current_context().find_root().obj
    if isinstance(entry, EntryPoint):
        entry.fast_exit = True


def with_state(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @click.option("--no-wait", is_flag=True, help="Exit with code 2 if another dreammake holds the project.")
    @click.option("--debug", is_flag=True, expose_value=False, callback=remember_debug,
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
