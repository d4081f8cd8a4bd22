"""The Dreamfile language: `rule`, `include`, `config`, `expand`, `target`, and the loader.

A Dreamfile is plain Python executed with these names in scope. Each `rule(...)` call
records a `Rule`; nothing runs until the planner asks.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import CodeType
from typing import Any

from dreammake.actions import is_action
from dreammake.confine import OutsideProject, confine
from dreammake.errors import DreamError
from dreammake.paths import expand, is_folder, normalize, without_wildcards
from dreammake.refs import TargetRef, target
from dreammake.suggest import check_keywords

CallSite = tuple[CodeType, int]  # (code object, bytecode offset) of a `rule(...)` call


class Rule:
    """One rule of a Dreamfile: what it reads, what it writes, and how.

    Paths are stored normalised (folder targets without their trailing slash; `folders`
    holds the indexes of outputs declared as folders).
    """

    __slots__ = ("name", "inputs", "input_shape", "outputs", "output_shape", "params", "action", "resources",
                 "_where", "wildcard_outputs", "folders")

    def __init__(self, name: str, inputs: tuple[tuple[str | None, str], ...], input_shape: str,
                 outputs: tuple[tuple[str | None, str], ...], output_shape: str, params: dict[str, Any],
                 action: Any, resources: dict[str, Any], where: CallSite, folders: frozenset[int],
                 wildcard_outputs: bool):
        self.name = name
        self.inputs = inputs
        self.input_shape = input_shape  # "none" | "single" | "list" | "dict"
        self.outputs = outputs
        self.output_shape = output_shape
        self.params = params
        self.action = action  # a user function, an Action from dreammake.rules, or None for aggregate rules
        self.resources = resources
        self._where = where
        self.folders = folders
        self.wildcard_outputs = wildcard_outputs

    @property
    def where(self) -> str:
        """`Dreamfile:12`: where the rule was declared."""
        return _at(self._where)

    @property
    def is_phony(self) -> bool:
        """An aggregate rule like `all`: inputs only, nothing to run."""
        return not self.outputs


@functools.lru_cache(maxsize=256)
def _relative(filename: str) -> str:
    return os.path.relpath(filename) if os.path.isabs(filename) else filename


Shape = tuple[tuple[tuple[str | None, str], ...], str, frozenset[int], bool]
_NONE: Shape = ((), "none", frozenset(), False)
_NO_FOLDERS: frozenset[int] = frozenset()
_FIRST_IS_FOLDER = frozenset((0,))


def _shape(value: Any, what: str, rule: str) -> Shape:
    """Normalise `input=`/`output=` (a path, a list or a dict) to ((name, path), ...), its shape, the indexes
    of folder paths, and whether any path has wildcards."""
    if value is None:
        return _NONE
    if type(value) is str:
        return ((None, normalize(value)),), "single", _FIRST_IS_FOLDER if value.endswith("/") else _NO_FOLDERS, \
            "{" in value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        return ((None, normalize(value)),), "single", _NO_FOLDERS, "{" in value
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
        shape = "dict"
    elif isinstance(value, (list, tuple)):
        pairs = [(None, v) for v in value]
        shape = "list"
    else:
        raise TypeError(f"rule {rule!r}: {what}= must be a path, a list or a dict, got {type(value).__name__}")
    items = []
    folders = set()
    wildcards = False
    for i, (key, path) in enumerate(pairs):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"rule {rule!r}: {what} entries must be paths, got {type(path).__name__}")
        path = os.fspath(path)
        if is_folder(path):
            folders.add(i)
        wildcards = wildcards or "{" in path
        items.append((key, normalize(path)))
    return tuple(items), shape, frozenset(folders), wildcards


class Config(dict):
    """The Dreamfile's `config`: values given with `--config key=value` win over the Dreamfile's own."""

    def __init__(self, overrides: Mapping[str, Any]):
        super().__init__(overrides)
        self._fixed = frozenset(overrides)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self._fixed:
            super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


class Workflow:
    """All rules of one Dreamfile (and its includes), plus the config they saw."""

    def __init__(self, dreamfile: Path, config: dict[str, Any] | None = None):
        self.dreamfile = dreamfile
        self.root = dreamfile.parent
        self.project = os.getcwd()  # outputs must lie inside this folder (see dreammake.confine)
        self.config = Config(config or {})
        self.rules: list[Rule] = []
        self.by_name: dict[str, Rule] = {}
        self.files: list[str] = []
        self.models: list[Any] = []
        self.scope: dict[str, Any] = {}  # the Dreamfile's global names after loading

    # -- the DSL ---------------------------------------------------------------------------
    def rule(
        self,
        name: str,
        input: Any = None,  # noqa: A002 - the DSL's own keyword
        output: Any = None,
        params: Mapping[str, Any] | None = None,
        run: Any = None,
        resources: Mapping[str, Any] | None = None,
        shards: int | None = None,
        **unknown: Any,
    ) -> Rule:
        """Declare a rule: `rule("tweets", input=..., output=..., params=..., run=..., resources=...)`.

        `shards=N` (or `resources={"shards": N}`) splits a prompt rule's generation over N workers, each loading
        the model once (with `"gpus": G`, G GPUs each); the output does not depend on N."""
        frame = sys._getframe(1)
        where = (frame.f_code, frame.f_lasti)  # the line number is worked out only when needed
        if unknown:  # a mistyped keyword: "did you mean"
            check_keywords("rule()", unknown, RULE_KEYWORDS)
        if not isinstance(name, str) or not name.isidentifier():
            raise DreamError(f"rule name must be an identifier-like string, got {name!r}", _at(where))
        if name in self.by_name:
            raise DreamError(f"rule {name!r} is defined twice (first at {self.by_name[name].where})", _at(where))
        try:
            inputs, input_shape, _, input_wildcards = _shape(input, "input", name)
            outputs, output_shape, folders, output_wildcards = _shape(output, "output", name)
        except TypeError as exc:
            raise DreamError(str(exc), _at(where)) from None
        outputs = self._confine_outputs(name, outputs, where)
        if run is not None:
            if not outputs:
                raise DreamError(f"rule {name!r} has a run= action but no output=", _at(where))
            if not is_action(run) and not callable(run):
                raise DreamError(f"rule {name!r}: run= must be a function or a rules.* action", _at(where))
        elif outputs:
            raise DreamError(f"rule {name!r} declares outputs but no run= action", _at(where))
        if input_wildcards and not output_wildcards:
            raise DreamError(f"rule {name!r}: inputs use wildcards that no output defines", _at(where))
        r = Rule(name, inputs, input_shape, outputs, output_shape, dict(params) if params else {}, run,
                 _resources(name, resources, shards, run, where), where, folders, output_wildcards)
        if is_action(run):
            run.bind(r)
            extra = run.extra_inputs()
            if extra:
                r.inputs = r.inputs + tuple((f"__extra{i}__", normalize(p)) for i, p in enumerate(extra))
        self.rules.append(r)
        self.by_name[name] = r
        return r

    def _confine_outputs(self, name: str, outputs: tuple[tuple[str | None, str], ...],
                  where: CallSite) -> tuple[tuple[str | None, str], ...]:
        """The outputs as target keys, or a one-line error when one would escape the project folder."""
        try:
            return tuple((key, _confined(path, self.project)) for key, path in outputs)
        except OutsideProject as exc:
            raise DreamError(f"rule {name!r}: {exc}", _at(where),
                             hint="outputs must lie inside the project folder (inputs may be anywhere)") from None

    def llm(self, spec: Any, **defaults: Any) -> Any:
        """A model for prompt rules (see `dreammake.llm.handle.llm`)."""
        from dreammake.llm.handle import llm

        model = llm(spec, **defaults)
        self.models.append(model)
        return model

    def include(self, path: str) -> None:
        """Execute another Dreamfile fragment (relative to the including file) in the same scope."""
        frame = sys._getframe(1)
        base = Path(frame.f_code.co_filename).parent
        self._exec_file((base / path).resolve() if not os.path.isabs(path) else Path(path), frame.f_globals)

    # -- loading ---------------------------------------------------------------------------
    def namespace(self) -> dict[str, Any]:
        """The names a Dreamfile sees."""
        from dreammake import rules as rules_module

        return {
            "__name__": "__dreamfile__",
            "rule": self.rule,
            "include": self.include,
            "config": self.config,
            "expand": expand,
            "target": target,
            "rules": rules_module,
            "llm": self.llm,
        }

    def _exec_file(self, path: Path, scope: dict[str, Any]) -> None:
        try:
            source = path.read_text()
        except OSError as exc:
            raise DreamError(f"cannot read {path}: {exc.strerror}", hint="pass the Dreamfile with -f FILE") from None
        filename = os.path.relpath(path)
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        self.files.append(filename)
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as exc:
            raise DreamError(f"syntax error: {exc.msg}", f"{filename}:{exc.lineno}") from None
        try:
            exec(code, scope)
        except DreamError:
            raise
        except Exception as exc:
            raise DreamError(f"{type(exc).__name__}: {exc}", self.locate(exc)) from exc

    def locate(self, exc: BaseException) -> str | None:
        """The deepest Dreamfile line in an exception's traceback, as `file:line`."""
        where = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename in self.files:
                where = f"{frame.filename}:{frame.lineno}"
        return where


def _confined(path: str, project: str) -> str:
    """An output path as a target key (see `confine`). Of a wildcard pattern the fixed part is checked here;
    each filled-in path is checked again when a job is made from it."""
    if "{" not in path:
        return confine(path, project)
    confine(without_wildcards(path), project)
    return path


def _at(where: CallSite) -> str:
    """`file:line` of a call site."""
    code, offset = where
    line = next((line for start, end, line in code.co_lines() if start <= offset < end), code.co_firstlineno)
    return f"{_relative(code.co_filename)}:{line}"


def load(dreamfile: str | os.PathLike[str], config: Mapping[str, Any] | None = None) -> Workflow:
    """Execute a Dreamfile and return its rules. `config` overrides the Dreamfile's own values."""
    path = Path(dreamfile)
    if not path.exists():
        raise DreamError(f"no Dreamfile at {path}", hint="create one, or pass -f FILE")
    workflow = Workflow(path.resolve(), config)
    workflow.scope = workflow.namespace()
    workflow._exec_file(path.resolve(), workflow.scope)
    return workflow


__all__ = ["Rule", "TargetRef", "Workflow", "expand", "is_folder", "load", "target"]


RULE_KEYWORDS = ("input", "output", "params", "run", "resources", "shards")  # rule()'s keywords besides the name


def _resources(name: str, resources: Mapping[str, Any] | None, shards: Any, run: Any,
               where: CallSite) -> dict[str, Any]:
    """A rule's resources, with `shards=` folded in and checked: a whole number ≥ 1, on a prompt rule only."""
    found = dict(resources) if resources else {}
    if shards is not None:
        if found.get("shards", shards) != shards:
            raise DreamError(f"rule {name!r}: shards={shards!r} but resources say shards={found['shards']!r}",
                             _at(where), hint="give the shard count once")
        found["shards"] = shards
    if "shards" not in found:
        return found
    count = found["shards"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DreamError(f"rule {name!r}: shards must be a whole number of at least 1, got {count!r}", _at(where))
    if count > 1 and not (is_action(run) and getattr(run, "shardable", False)):
        raise DreamError(f"rule {name!r}: shards= splits a prompt rule's generation over workers, and its run= is"
                         " not a prompt rule", _at(where), hint="drop shards=, or use resources= for other needs")
    return found
