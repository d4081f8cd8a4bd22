"""The executor seam: `dreammake --executor NAME` → the factory registered as NAME.

A factory is called as `factory(planner, runner, console, jobs, keep_going, resources, run_id, jobserver,
config)` (`config` is the Dreamfile's config) and returns an object whose `run(decisions)` runs the stale
jobs and returns a `dreammake.executor.Summary` (`Scheduler` subclasses do). The built-ins `local` and
`slurm` register here the way a plugin does; a plugin calls `register_executor("mine", factory)` or declares
an entry point ``mine = pkg.module:factory`` in the group ``dreammake.executors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from dreammake.errors import DreamError
from dreammake.plugins import Registry, UnknownName

if TYPE_CHECKING:
    from dreammake.console import Console
    from dreammake.executor import Summary
    from dreammake.planner import Decision, Planner
    from dreammake.runner import JobRunner


class Executor(Protocol):
    """What `project.build` needs of an executor."""

    def run(self, decisions: list[Decision]) -> Summary:
        """Run the stale jobs among `decisions` and record their outputs."""


class ExecutorFactory(Protocol):
    """Builds an executor for one run (see the module docstring for the arguments)."""

    def __call__(self, planner: Planner, runner: JobRunner, console: Console, jobs: int, keep_going: bool,
                 resources: dict[str, float] | None, run_id: int | None, jobserver: Any,
                 config: dict[str, Any]) -> Executor: ...


EXECUTORS: Registry[ExecutorFactory] = Registry("dreammake.executors", "executor")


def register_executor(name: str, factory: ExecutorFactory | str) -> None:
    """Make `--executor NAME` build its executor with `factory` (or a ``"module:attribute"`` reference)."""
    EXECUTORS.register(name, factory)


def executor_factory(name: str) -> ExecutorFactory:
    """The factory of `--executor NAME`; a one-line DreamError with "did you mean" for an unknown name."""
    try:
        return EXECUTORS.get(name)
    except UnknownName as exc:
        raise DreamError(f"--executor: {exc}") from None


def local(planner: Planner, runner: JobRunner, console: Console, jobs: int, keep_going: bool,
          resources: dict[str, float] | None, run_id: int | None, jobserver: Any, config: dict[str, Any]) -> Executor:
    """Threads in this process (`-j N`), sharing GNU make's jobserver when there is one."""
    from dreammake.executor import LocalExecutor

    return LocalExecutor(planner, runner, console, jobs, keep_going, resources, run_id, jobserver)


def slurm(planner: Planner, runner: JobRunner, console: Console, jobs: int, keep_going: bool,
          resources: dict[str, float] | None, run_id: int | None, jobserver: Any, config: dict[str, Any]) -> Executor:
    """One sbatch job per dreammake job (config keys `slurm_args`, `slurm_poll_s`); no jobserver."""
    from dreammake.slurm import SlurmExecutor

    return SlurmExecutor.from_config(config, planner, runner, console, jobs, keep_going, resources, run_id)


register_executor("local", local)
register_executor("slurm", slurm)
