"""How a rule's `run=` is identified (for fingerprints) and executed.

Two kinds of action: a user's Python function, and the rule kinds of `dreammake.rules` (built-in or
a plugin's), which subclass `Action`; `is_action` tells them apart, everywhere.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dreammake.errors import DreamError
from dreammake.fingerprint import code_hash, digest, hash_data

if TYPE_CHECKING:
    import pyarrow as pa

    from dreammake.graph import Job
    from dreammake.llm.remote import WorkerStarter
    from dreammake.state import State


@dataclass
class JobContext:
    """What an action gets to do its work."""

    job: Job
    outputs: dict[str, str]  # output key ("0", "1", or the output's name) -> temp path to write
    work_path: str  # where the job's scratch folder lives; `work_dir` creates it on first use
    cancel: threading.Event
    fingerprint: str
    state: State | None = None
    stats: dict[str, Any] = field(default_factory=dict)  # llm_calls, tokens, cost ... for status and cards
    log: Callable[[str], None] = print
    progress: Callable[[str, int], Callable[[int], None]] | None = None
    budget: Any = None  # dreammake.llm.generate.Budget for --max-cost
    dreamfile: str = ""  # the Dreamfile's path and --config values, for worker processes that reload it
    config: dict[str, Any] = field(default_factory=dict)
    written: dict[str, tuple[int, str]] = field(default_factory=dict)  # key -> (rows, data hash)
    gpus: tuple[str, ...] | None = None  # the GPUs the executor assigned this job (CUDA ids); None: not assigned
    workers: WorkerStarter | None = None  # how the executor starts generation workers (None: generate in-process)
    _work_dir_open: bool = field(default=False, init=False, repr=False)
    _kept: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def work_dir(self) -> str:
        """Persistent scratch space for this job (resumable checkpoints), created on first use.

        It survives a killed or failed run while the fingerprint stays the same, is wiped when the
        fingerprint changes, and is removed once the job succeeds.
        """
        if not self._work_dir_open:
            open_work_dir(self.work_path, self.fingerprint)
            self._work_dir_open = True
        return self.work_path

    def input_path(self, name: str | int = 0) -> str:
        """Path of an input by name or position."""
        for i, (n, path) in enumerate(self.job.inputs):
            if n == name or i == name:
                return path
        raise KeyError(f"rule {self.job.rule.name!r} has no input {name!r}")

    def write_batches(self, key: str, batches: Iterable[Any], schema: pa.Schema | None = None) -> int:
        """Stream tables/batches into output `key` (Parquet with metadata); returns the row count.

        `schema` is the file's schema when no batch arrives. Stops with a DreamError between batches once the
        run is cancelled (Ctrl-C); the temp file is closed either way."""
        from dreammake.tables import TableWriter

        writer = TableWriter(self.outputs[key], self.job.rule.name, self.fingerprint)
        try:
            for batch in batches:
                if self.cancel.is_set():
                    raise DreamError(f"rule {self.job.rule.name!r}: interrupted", self.job.rule.where)
                writer.write(batch)
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters, not a failed close of a temp file
                writer.close(schema)
            raise
        self.written[key] = (writer.rows, writer.close(schema))
        return writer.rows

    def keep(self, name: str, make: Callable[[], Any]) -> Any:
        """An object that lives as long as the job: made by `make()` on first use, closed when the job ends."""
        if name not in self._kept:
            self._kept[name] = make()
        return self._kept[name]

    def close(self) -> None:
        """The job ended (well or not): close what `keep` made, last made first."""
        kept, self._kept = self._kept, {}
        for thing in reversed(list(kept.values())):
            thing.close()

    def track(self, description: str, total: int) -> Callable[[int], None]:
        """A progress bar for long work inside the job; returns `advance(n)`."""
        if self.progress is None:
            return lambda n: None
        return self.progress(f"{self.job.name}: {description}", total)


def work_path(root: str, job: Job) -> str:
    """Where a job's persistent scratch folder lives: `.dreammake/work/<rule>-<hash of the job name>/`."""
    from dreammake.state import STATE_DIR

    return os.path.join(root, STATE_DIR, "work", f"{job.rule.name}-{digest(job.name)[:12]}")


def open_work_dir(folder: str, fingerprint: str) -> None:
    """Make `folder` the scratch space of a job with `fingerprint`: kept if it was, else emptied."""
    marker = os.path.join(folder, "FINGERPRINT")
    try:
        with open(marker) as f:
            if f.read().strip() == fingerprint:
                return
    except OSError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    with open(marker, "w") as f:
        f.write(fingerprint)


# attributes (or params() keys) naming a model an action uses -> the model's role on a card
MODEL_ROLES = {"base": "base model", "reward_model": "reward model", "model": "model", "embedder_model": "embedder"}


class Action:
    """Base class of rule kinds (built-in or a plugin's). Subclasses set `kind`, `version` and implement `execute`."""

    kind = "action"
    version = 1
    # True when the action must run in the coordinating process, e.g. it reads and commits the LLM row cache
    # (`JobContext.state`): an executor that runs jobs elsewhere (Slurm) keeps it local
    needs_state = False
    shardable = False  # whether `shards=N` may split its generation over N workers (prompt steps say True)

    def bind(self, rule: Any) -> None:
        """Called once when the action is attached to a rule (to check column names etc.)."""

    def params(self) -> dict[str, Any]:
        """The settings that decide the output (enter the fingerprint)."""
        return {}

    def model_identity(self) -> Any:
        """The identity of the model the action uses, if any."""
        return None

    def code_identity(self) -> str:
        """User callables inside the action (e.g. a filter function), hashed."""
        return ""

    def models(self) -> list[tuple[str, Any]]:
        """The models the action uses as (role, model), for cards: its `llm(...)` handles (role "generator") and
        the model names or targets it holds as `MODEL_ROLES` attributes or params() keys. A kind that keeps its
        models elsewhere overrides this."""
        from dreammake.llm.handle import LLM

        found: list[tuple[str, Any]] = [("generator", v) for v in vars(self).values() if isinstance(v, LLM)]
        params: dict[str, Any] | None = None
        for key, role in MODEL_ROLES.items():
            value = getattr(self, key, None)
            if value is None:
                params = self.params() if params is None else params
                value = params.get(key)
            if isinstance(value, str) and value:
                found.append((role, value))
        return found

    def extra_inputs(self) -> list[str]:
        """Paths the action reads besides the rule's inputs (e.g. a checkpoint used as a model)."""
        return []

    def execute(self, ctx: JobContext) -> dict[str, Any] | None:
        """Produce the outputs at ctx.outputs' temp paths, or return tables for the engine to write."""
        raise NotImplementedError


def is_action(obj: Any) -> bool:
    """Whether a rule's `run=` is a rule kind's `Action` (else a user function, or None for an aggregate rule)."""
    return isinstance(obj, Action)


@dataclass(frozen=True)
class Identity:
    """The per-rule parts of a job fingerprint."""

    kind: str
    code: str
    params: str
    model: str
    params_source: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)  # what `params` hashes

    @cached_property
    def _prefix(self) -> str:
        return f"kind={self.kind}|code={self.code}|params={self.params}|model={self.model}|inputs="

    def fingerprint(self, inputs_hash: str) -> str:
        """The job fingerprint: one hash over the four identity components and `inputs_hash` (the hash over
        the inputs' content hashes)."""
        return digest(self._prefix + inputs_hash)

    @cached_property
    def param_keys(self) -> dict[str, str]:
        """A hash per top-level key of the params (`params.KEY`: the action's settings and the rule's params=),
        so a plan can name the key that changed. Computed on first use: a no-op check never needs them. They only
        name what changed (the fingerprint uses `params`), so 64 bits each are plenty."""
        keys = dict.fromkeys(key for source in self.params_source for key in source)
        return {f"params.{key}": hash_data([source[key] for source in self.params_source if key in source])[:16]
                for key in keys}

    def components(self, inputs_hash: str) -> dict[str, str]:
        """All five fingerprint components and the per-key params hashes, as stored in the state."""
        return {"kind": self.kind, "code": self.code, "params": self.params, "model": self.model,
                "inputs": inputs_hash, **self.param_keys}


_FUNCTION_KIND = hash_data("function@1")
_NO_MODEL = hash_data(None)
_NO_PARAMS = hash_data([{}, {}])


_plain_function_identity: dict[int, tuple[Any, Identity]] = {}


def identify(action: Any, rule_params: dict[str, Any], wildcards: dict[str, str]) -> Identity:
    """Fingerprint components that do not depend on input contents."""
    if not rule_params and not wildcards and not is_action(action):
        cached = _plain_function_identity.get(id(action))
        if cached is not None and cached[0] is action:
            return cached[1]
        ident = Identity(_FUNCTION_KIND, code_hash(action), _NO_PARAMS, _NO_MODEL)
        _plain_function_identity[id(action)] = (action, ident)
        return ident
    if is_action(action):
        action_params = action.params()
        return Identity(
            kind=hash_data(f"{action.kind}@{action.version}"),
            code=hash_data(action.code_identity()),
            params=hash_data([action_params, rule_params, wildcards]),
            model=hash_data(action.model_identity()),
            params_source=(action_params, rule_params),
        )
    params = hash_data([rule_params, wildcards]) if rule_params or wildcards else _NO_PARAMS
    return Identity(_FUNCTION_KIND, code_hash(action), params, _NO_MODEL, (rule_params,))


def function_arguments(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """The parameter names a user function declares, and whether it takes **kwargs."""
    sig = inspect.signature(fn)
    names = {p.name for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
