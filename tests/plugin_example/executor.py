"""`dreammake --executor audited`: the local executor, plus one line per job run in an audit log
(`config["audit_log"]`, default `audit.log`)."""

from __future__ import annotations

from typing import Any

from dreammake.executors import Executor, local


class Audited:
    """Runs the jobs on `inner` and appends `ran JOB` / `failed JOB` lines to `path`."""

    def __init__(self, inner: Executor, path: str):
        self.inner = inner
        self.path = path

    def run(self, decisions: list[Any]) -> Any:
        summary = self.inner.run(decisions)
        with open(self.path, "a") as log:
            log.writelines(f"ran {job}\n" for job in summary.ran)
            log.writelines(f"failed {job}\n" for job, _ in summary.failed)
        return summary


def audited(planner: Any, runner: Any, console: Any, jobs: int, keep_going: bool, resources: Any, run_id: Any,
            jobserver: Any, config: dict[str, Any]) -> Audited:
    """The executor factory dreammake calls for `--executor audited`."""
    inner = local(planner, runner, console, jobs, keep_going, resources, run_id, jobserver, config)
    return Audited(inner, config.get("audit_log", "audit.log"))
