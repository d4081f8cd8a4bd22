"""Decides which jobs must run, and says why.

A job runs when an output is missing, has no record, was changed by hand, its
fingerprint changed (the changed components are named), an input will be rebuilt,
or it is forced. An output whose own build metadata names the planned fingerprint (see
`dreammake.adopt`) is adopted: recorded as built, not rebuilt. At execution time the
same check runs again once a job's inputs are final, so a rebuilt input whose content
did not change does not rerun its dependants (early cutoff).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from dreammake.actions import Identity, identify
from dreammake.content import hash_file_bytes
from dreammake.errors import DreamError
from dreammake.filehash import Hasher
from dreammake.fingerprint import COMPONENTS, digest
from dreammake.graph import Graph, Job
from dreammake.state import State, TargetRecord, stat_signature

_UNKNOWN: Any = object()  # not hashed yet this run (None means: the file does not exist)
REASON_ORDER = ("forced", "missing", "untracked", "modified", "kind", "code", "params", "model", "input")


@dataclass(slots=True)
class Decision:
    """Whether a job runs, the reason code (one of REASON_ORDER) and a readable detail."""

    job: Job
    reason: str | None
    detail: str = ""
    fingerprint: str = ""
    identity: Identity | None = None
    inputs_hash: str = ""

    @property
    def components(self) -> dict[str, str] | None:
        """The five fingerprint components (None for a job without outputs)."""
        return self.identity.components(self.inputs_hash) if self.identity is not None else None

    @property
    def stale(self) -> bool:
        return self.reason is not None


class Planner:
    """Computes fingerprints and rebuild reasons for the jobs of a graph."""

    def __init__(self, graph: Graph, state: State, forced: set[str] | None = None, force_all: bool = False):
        self.graph = graph
        self.state = state
        self.hasher = Hasher(state)
        self.records = state.targets()
        self.forced = forced or set()
        self.force_all = force_all
        self._identity: dict[int, Identity] = {}
        self._hashes: dict[str, str | None] = {}
        self.changed_files = self.hasher.changed  # paths whose content changed since it was last hashed
        self.adopted: list[TargetRecord] = []  # targets recognised by their build metadata, not yet recorded
        self.adopted_total = 0
        self._built: list[TargetRecord] = []  # records of finished jobs, not yet committed

    # -- content hashes ----------------------------------------------------------------------
    def content_hash(self, path: str, fresh: bool = False) -> str | None:
        """Content hash of a file or folder (memoised for the run unless `fresh`)."""
        if not fresh and path in self._hashes:
            return self._hashes[path]
        value = self._hashes[path] = self.hasher.content_hash(path)
        return value

    def hashed_paths(self) -> list[str]:
        """Every input and output path whose content this planner looked at."""
        return list(self._hashes)

    # -- recording built outputs (the runner and the scheduler call these, from the main thread) ----
    def built_hash(self, tmp: str, folder: bool) -> str | None:
        """Content hash of a just-built output at its temp path."""
        return self.hasher.folder_hash(tmp) if folder else hash_file_bytes(tmp)

    def unchanged(self, path: str, new_hash: str | None, new_data_hash: str | None) -> str | None:
        """When the existing recorded output at `path` already holds what a build just produced (same table data,
        or same bytes) and was not edited by hand, its content hash (early cutoff keeps it); else None."""
        record = self.records.get(path)
        if record is None:
            return None
        current = self.content_hash(path, fresh=True)
        same_data = new_data_hash is not None and new_data_hash == record[2]
        return current if current == record[1] and (same_data or new_hash == current) else None

    def placed(self, tmp: str, path: str, new_hash: str | None, folder: bool) -> None:
        """A built output was renamed from `tmp` to `path`: remember its hash (and that it changed)."""
        if folder:
            self.hasher.moved(tmp, path)  # the folder hash is over relative paths: new_hash still holds
        else:
            self.state.remember_file(path, stat_signature(os.stat(path)), new_hash)
        self._hashes[path] = new_hash
        self.changed_files.add(path)

    def record(self, records: list[TargetRecord]) -> None:
        """Keep the records of a finished job's outputs until the next `commit`."""
        self._built.extend(records)

    @property
    def uncommitted(self) -> bool:
        """Whether records (built or adopted) wait for a `commit`."""
        return bool(self._built or self.adopted)

    def commit(self) -> None:
        """Write the waiting records and the file-hash cache to the state database."""
        built, self._built = self._built, []
        self.state.record_targets(built + self.take_adopted())
        self.state.flush_files()

    # -- fingerprints ------------------------------------------------------------------------
    def identity(self, job: Job) -> Identity:
        ident = self._identity.get(id(job))
        if ident is None:
            try:
                ident = identify(job.rule.action, job.rule.params, job.wildcards)
            except TypeError as exc:
                raise DreamError(f"rule {job.rule.name!r}: {exc}", job.rule.where) from None
            self._identity[id(job)] = ident
        return ident

    @staticmethod
    def inputs_hash(job: Job, input_hashes: list[str | None]) -> str:
        """The `inputs` fingerprint component: one hash over the inputs' content hashes, in order."""
        if job.rule.input_shape == "dict":
            return digest("\n".join(f"{n}={h}" for (n, _), h in zip(job.inputs, input_hashes)))
        return digest("\n".join(map(str, input_hashes)))

    # -- decisions ---------------------------------------------------------------------------
    def decide(self, job: Job, will_run: set[int] | None = None) -> Decision:
        """Check one job. `will_run` holds ids of upstream jobs that are going to run (dry-run)."""
        input_hashes, rebuilt_input = self._input_hashes(job, will_run)
        if not job.outputs:
            return Decision(job, None)
        ident = self.identity(job)
        inputs = self.inputs_hash(job, input_hashes)
        decision = Decision(job, None, "", ident.fingerprint(inputs), ident, inputs)
        if self.force_all or (self.forced and any(p in self.forced for _, p in job.outputs)):
            return self._stale(decision, "forced", "forced")
        records, untracked = self._output_records(decision)
        if records is None:
            return decision  # an output is missing
        if rebuilt_input is not None:
            if untracked is not None:
                return self._stale(decision, "untracked", f"{untracked} was not built by dreammake")
            return self._stale(decision, "input", f"input {rebuilt_input} will be rebuilt")
        if untracked is None and all(r[0] == decision.fingerprint and c == r[1] for _, r, c in records):
            return decision
        return self._compare(decision, records, untracked)

    def _input_hashes(self, job: Job, will_run: set[int] | None) -> tuple[list[str | None], str | None]:
        """The content hashes of a job's inputs (None for one that will be rebuilt), and the first input that
        will be rebuilt or does not exist yet (None when there is none)."""
        input_hashes: list[str | None] = []
        rebuilt_input = None
        producers = self.graph.producer
        hashes = self._hashes
        for _, path in job.inputs:
            if will_run:
                producer = producers.get(path)
                if producer is not None and id(producer) in will_run:
                    rebuilt_input = rebuilt_input or path
                    input_hashes.append(None)
                    continue
            value = hashes.get(path, _UNKNOWN)
            if value is _UNKNOWN:
                value = hashes[path] = self.hasher.content_hash(path)
            if value is None:
                if producers.get(path) is None:
                    raise DreamError(f"rule {job.rule.name!r} needs {path}, which does not exist and no rule makes"
                                     " it", job.rule.where)
                rebuilt_input = rebuilt_input or path
            input_hashes.append(value)
        return input_hashes, rebuilt_input

    def _output_records(self, decision: Decision) -> tuple[list[tuple[str, Any, str]] | None, str | None]:
        """(path, record or None, content hash) per output, and the first output without a record; no records
        (the decision made stale) when an output is missing."""
        records = []
        untracked = None
        hashes = self._hashes
        for _, path in decision.job.outputs:
            current = hashes.get(path, _UNKNOWN)
            if current is _UNKNOWN:
                current = hashes[path] = self.hasher.content_hash(path)
            if current is None:
                self._stale(decision, "missing", f"{path} is missing")
                return None, None
            record = self.records.get(path)
            if record is None:
                untracked = untracked or path
            records.append((path, record, current))
        return records, untracked

    def _compare(self, decision: Decision, records: list[tuple[str, Any, str]], untracked: str | None) -> Decision:
        """Outputs that differ from their records: adopted when their metadata says so, else the reason."""
        if self._adopt(decision, records):
            return decision
        if untracked is not None:
            return self._stale(decision, "untracked", f"{untracked} was not built by dreammake")
        for path, record, current in records:
            if current != record[1]:
                return self._stale(decision, "modified", f"{path} was changed by hand")
        for path, record, _ in records:
            if record[0] != decision.fingerprint:
                return self._changed_components(decision, decision.job, self.state.components(path))
        return decision

    def _adopt(self, decision: Decision, records: list[tuple[str, Any, str]]) -> bool:
        """Record outputs that are what this very build would write (a killed run placed them but never
        recorded them; or the state was rebuilt). True when every output is up to date that way."""
        from datetime import datetime, timezone

        from dreammake.adopt import check

        found = []
        for path, record, current in records:
            if record is not None and record[0] == decision.fingerprint and record[1] == current:
                continue
            adopted = check(path, decision.fingerprint, current)
            if adopted is None:
                return False
            found.append((path, current, adopted))
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rule = decision.job.rule.name
        for path, current, adopted in found:
            size = os.path.getsize(path) if os.path.isfile(path) else 0  # (a folder's size is informational)
            self.adopted.append(TargetRecord(path, rule, decision.fingerprint, dict(decision.components or {}),
                                             current, adopted.data_hash, size, adopted.rows, now))
            self.records[path] = (decision.fingerprint, current, adopted.data_hash)
        return True

    def take_adopted(self) -> list[TargetRecord]:
        """The records of targets adopted since the last call (for the state; nothing when read-only)."""
        adopted, self.adopted = self.adopted, []
        self.adopted_total += len(adopted)
        return [] if self.state.read_only else adopted

    def _changed_components(self, decision: Decision, job: Job, old: dict[str, str]) -> Decision:
        comps = decision.components or {}
        changed = [name for name in COMPONENTS if old.get(name) != comps[name]]
        if not changed:
            return self._stale(decision, "params", "fingerprint changed")
        first = changed[0]
        if first == "inputs":
            which = next((p for p in job.input_paths if p in self.changed_files), None)
            return self._stale(decision, "input", f"input {which} changed" if which else "inputs changed")
        names = {"kind": "rule kind or version", "code": "code", "params": "params", "model": "model"}
        parts = [names.get(c, "inputs") for c in changed]
        if "params" in changed:  # name the keys (records written before per-key hashes have none)
            keys = sorted(k for k in {**old, **comps} if k.startswith("params.") and old.get(k) != comps.get(k))
            if keys and any(k.startswith("params.") for k in old):
                parts[changed.index("params")] = ", ".join(keys)
        return self._stale(decision, first, ", ".join(parts) + " changed")

    @staticmethod
    def _stale(decision: Decision, reason: str, detail: str) -> Decision:
        decision.reason = reason
        decision.detail = detail
        return decision

    def plan(self) -> list[Decision]:
        """Decisions for every job, upstream first, assuming stale jobs will run (like `make -n`)."""
        will_run: set[int] = set()
        out = []
        for job in self.graph.jobs:
            d = self.decide(job, will_run)
            if d.stale:
                check_inputs(job, self.graph, will_run)
                will_run.add(id(job))
            out.append(d)
        self.state.record_targets(self.take_adopted())
        return out


def check_inputs(job: Job, graph: Graph, will_run: set[int]) -> None:
    """Let a stale job's action check the schemas of its Parquet inputs that exist and will not be rebuilt (its
    `check_inputs(job, schemas)`, e.g. a prompt rule's `input_column`): `-n` finds a mistyped column, not the run.
    Only the Parquet footers are read."""
    check = getattr(job.rule.action, "check_inputs", None)
    if check is None:
        return
    import pyarrow.parquet as pq

    from dreammake.targets import is_table_path

    schemas = {}
    for _, path in job.inputs:
        producer = graph.producer.get(path)
        if is_table_path(path) and os.path.isfile(path) and (producer is None or id(producer) not in will_run):
            schemas[path] = pq.read_schema(path).names
    check(job, schemas)
