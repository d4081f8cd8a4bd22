"""`python -m dreammake.worker SPEC.json`: run one job away from the coordinating process.

The spec (written by `dreammake.slurm.SlurmExecutor`) names the Dreamfile, the rule and wildcards, the
fingerprint, and the temp paths to write; the `--config` values come in the environment
(`dreammake.config_env`: they may be credentials). The worker loads the Dreamfile, rebuilds only that
job (no DAG resolution), checks that its rule still has the identity the coordinator planned with, runs
the action into the temp paths and writes the result file atomically: rows, data hashes and stats, or
the error and its traceback. It never opens the state database; the coordinator places the outputs and
records them.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

from dreammake.errors import DreamError
from dreammake.runner import ActionRunner, JobOutput

if TYPE_CHECKING:
    from dreammake.graph import Job

IDENTITY = ("kind", "code", "params", "model")  # the fingerprint components that do not depend on inputs


def rebuild_job(dreamfile: str, rule_name: str, wildcards: dict[str, str]) -> tuple[Job, dict[str, Any]]:
    """Load the Dreamfile (with the `--config` values from the environment) and make the one job of `rule_name`
    with `wildcards` (no DAG resolution); returns the job and the config."""
    from dreammake.config_env import inherited_config
    from dreammake.dsl import load
    from dreammake.graph import Resolver

    config = inherited_config()
    workflow = load(dreamfile, config)
    rule = workflow.by_name.get(rule_name)
    if rule is None:
        raise DreamError(f"rule {rule_name!r} is no longer in {dreamfile}",
                         hint="the Dreamfile changed after the job was submitted; run dreammake again")
    return Resolver(workflow).job_for(rule, dict(wildcards or {})), config


def run_spec(spec: dict[str, Any]) -> JobOutput:
    """Rebuild the job named by `spec` and execute it into its temp outputs."""
    from dreammake.actions import identify

    job, config = rebuild_job(spec["dreamfile"], spec["rule"], spec.get("wildcards") or {})
    rule = job.rule
    ident = identify(rule.action, rule.params, job.wildcards)
    planned = spec.get("components") or {}
    if job.output_paths != spec["outputs"] or any(getattr(ident, k) != planned.get(k) for k in IDENTITY):
        raise DreamError(f"rule {rule.name!r} changed in the Dreamfile after the job was submitted", rule.where,
                         hint="run dreammake again")
    hashes = dict(spec.get("input_hashes") or {})
    runner = ActionRunner(spec["root"], log=lambda text: print(text, flush=True), dreamfile=spec["dreamfile"],
                          config=config, input_hash=hashes.get)
    output = runner.execute(job, spec["fingerprint"], spec["temps"])
    if os.environ.get("SLURM_JOB_ID"):
        output.stats["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return output


def main(argv: list[str] | None = None) -> int:
    """Run the spec given as the only argument; exit 0 when the job succeeded, else 1."""
    from dreammake.jsonfiles import write_json

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dreammake.worker SPEC.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        spec = json.load(f)
    os.chdir(spec["root"])
    try:
        result: dict[str, Any] = {"ok": True, **run_spec(spec).to_json()}
    except Exception as exc:
        traceback.print_exception(exc.__cause__ or exc)  # the action's own error, so the log ends at its line
        if isinstance(exc, DreamError):
            result = {"ok": False, "error": exc.message, "where": exc.where, "hint": exc.hint}
        else:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result["traceback"] = traceback.format_exc()
    sys.stdout.flush()
    write_json(spec["result"], result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
