"""Fingerprints: xxh3-128 over a canonical encoding of what decides a job's outputs.

A job's fingerprint combines five components, each hashed separately so the planner
can say which one changed: the rule kind and its version, the action's code, the
params, the model identity, and the content hashes of every input.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import inspect
import json
import math
import os
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import xxhash

COMPONENTS = ("kind", "code", "params", "model", "inputs")


def digest(data: bytes | str) -> str:
    """xxh3-128 hex digest of bytes or text."""
    return xxhash.xxh3_128_hexdigest(data.encode() if isinstance(data, str) else data)


def _fallback(obj: Any) -> Any:
    identity = getattr(obj, "__dreammake_identity__", None)
    if identity is not None:
        return identity()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, bytes):
        return {"__bytes__": digest(obj)}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return f"{type(obj).__name__}.{obj.name}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dataclass__": type(obj).__qualname__, **dataclasses.asdict(obj)}
    if callable(obj):
        return {"__code__": code_hash(obj)}
    model_json_schema = getattr(obj, "model_json_schema", None)  # pydantic model classes
    if model_json_schema is not None:
        return {"__schema__": model_json_schema()}
    raise TypeError(f"cannot fingerprint a {type(obj).__name__}; use plain data (str, numbers, lists, dicts)")


def canonical(obj: Any) -> str:
    """A stable text encoding of plain data (dict keys sorted, floats exact)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_fallback, ensure_ascii=False)


def hash_data(obj: Any) -> str:
    """Fingerprint of plain data."""
    return digest(canonical(obj))


# -- code ------------------------------------------------------------------------------------
# Code identity. A function defined in the project (the Dreamfile, its includes, or any module whose file lies
# in the project folder: `from helpers import clean` with lib/helpers.py) is identified by its source without
# comments, formatting or docstrings, plus everything project-defined it reads: functions and classes (hashed
# the same way, recursively), module attributes (`helpers.clean`), and plain-data globals by value. Code from
# installed packages is identified by module, name and package version (their versions go into the cards).

_function_cache: dict[int, tuple[Any, str]] = {}  # id(function) -> (function, hash); the function is kept alive
_source_cache: dict[Any, tuple[str, frozenset[str], frozenset[tuple[str, str]]]] = {}  # code object -> parsed source
_shared_cache: dict[tuple[Any, int], str] = {}  # (code, id(globals)) -> hash, for functions without closure/defaults


class _StripDocstrings(ast.NodeTransformer):
    def _strip(self, node: Any) -> Any:
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def _parsed(fn: Callable[..., Any]) -> tuple[str, frozenset[str], frozenset[tuple[str, str]]]:
    """A function's source without comments, formatting or docstrings, the global names it reads, and the
    `name.attribute` pairs it reads. Memoised per code object: rules made in a loop share one parse."""
    code = fn.__code__
    cached = _source_cache.get(code)
    if cached is not None:
        return cached
    try:
        tree = _StripDocstrings().visit(ast.parse(textwrap.dedent(inspect.getsource(fn))))
    except (OSError, TypeError, SyntaxError):  # e.g. a lambda whose source line does not parse alone
        names = _code_names(code)
        result = (_code_object_hash(code), frozenset(names), frozenset((n, a) for n in names for a in names))
    else:
        names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))
        attributes = frozenset((n.value.id, n.attr) for n in ast.walk(tree)
                               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name))
        result = (ast.dump(tree, annotate_fields=False, include_attributes=False), names, attributes)
    _source_cache[code] = result
    return result


def _code_object_hash(code: Any) -> str:
    """Bytecode, constants and names of a code object, nested code objects included (no addresses)."""
    consts = [_code_object_hash(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return digest(code.co_code + "\x1e".join([*consts, *code.co_names]).encode())


def _code_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _code_names(const)
    return names


def code_hash(fn: Callable[..., Any], _seen: frozenset[int] = frozenset()) -> str:
    """Hash of a function's behaviour (see the comment above): project code by its source and what it reads,
    installed code by module, name and package version."""
    fn = inspect.unwrap(fn) if hasattr(fn, "__wrapped__") else fn
    code = getattr(fn, "__code__", None)
    if code is None:  # a class or a callable object
        target = fn if isinstance(fn, type) else type(fn)
        if isinstance(target, type) and _is_project_class(target):
            return digest(f"class:{_class_source(target)}")
        return digest(f"{target.__module__}.{target.__qualname__}")
    cached = _function_cache.get(id(fn))
    if cached is not None and cached[0] is fn:
        return cached[1]
    shared = (code, id(fn.__globals__)) if not fn.__closure__ and not fn.__defaults__ else None
    if shared is not None:  # functions made in a loop over one code object: what they read is the same
        result = _shared_cache.get(shared)
        if result is not None:
            _function_cache[id(fn)] = (fn, result)
            return result
    module = getattr(fn, "__module__", None) or ""
    if module not in _LOCAL_MODULES and not is_project_file(code.co_filename):
        result = digest(f"{module}.{fn.__qualname__}@{_package_version(module)}")
        _function_cache[id(fn)] = (fn, result)
        return result
    text, names, attributes = _parsed(fn)
    parts = [text, canonical(fn.__defaults__ or ()), canonical(_closure_values(fn))]
    seen = _seen | {id(code)}
    scope = fn.__globals__
    for name in sorted(names):
        if name.startswith("__") or name not in scope:
            continue
        value = scope[name]
        if inspect.ismodule(value):
            if _is_project_module(value):
                for attr in sorted(a for n, a in attributes if n == name and hasattr(value, a)):
                    part = _global_part(getattr(value, attr), seen)
                    if part is not None:
                        parts.append(f"{name}.{attr}={part}")
            continue
        part = _global_part(value, seen)
        if part is not None:
            parts.append(f"{name}={part}")
    result = digest("\n".join(parts))
    _function_cache[id(fn)] = (fn, result)
    if shared is not None:
        _shared_cache[shared] = result
    return result


def _global_part(value: Any, seen: frozenset[int]) -> str | None:
    """The identity of a global a function reads: project functions and classes by source, plain data by value,
    installed code not at all (None)."""
    if inspect.isfunction(value):
        if id(value.__code__) in seen:
            return "recursive"
        if getattr(value, "__module__", "") in _LOCAL_MODULES or is_project_file(value.__code__.co_filename):
            return code_hash(value, seen)
        return None
    if isinstance(value, type):
        return f"class:{_class_source(value)}" if _is_project_class(value) else None
    if inspect.ismodule(value) or callable(value):
        return None
    try:
        return canonical(value)
    except (TypeError, ValueError):
        return f":{type(value).__qualname__}"


_LOCAL_MODULES = ("__dreamfile__", "__main__")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=4096)
def _project_file(filename: str, root: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    path = os.path.realpath(os.path.join(root, filename))
    if os.path.commonpath([path, root]) != root or os.path.commonpath([path, _PACKAGE_DIR]) == _PACKAGE_DIR:
        return False
    return not any(part in ("site-packages", "dist-packages") for part in path.split(os.sep))


def is_project_file(filename: str) -> bool:
    """Whether a source file belongs to the project (inside the project folder, not an installed package)."""
    return _project_file(filename, os.path.realpath(os.getcwd()))


def _is_project_module(module: Any) -> bool:
    return is_project_file(getattr(module, "__file__", None) or "")


def _is_project_class(cls: type) -> bool:
    if cls.__module__ in _LOCAL_MODULES:
        return True
    module = sys.modules.get(cls.__module__)
    return module is not None and _is_project_module(module)


def _class_source(cls: type) -> str:
    try:
        return digest(ast.dump(_StripDocstrings().visit(ast.parse(textwrap.dedent(inspect.getsource(cls))))))
    except (OSError, TypeError, SyntaxError):
        return cls.__qualname__


def _closure_values(fn: Callable[..., Any]) -> list[Any]:
    values = []
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:
            values.append(None)
            continue
        try:
            canonical(value)
            values.append(value)
        except TypeError:
            values.append(type(value).__qualname__)
    return values


def _package_version(module: str) -> str:
    from importlib import metadata

    top = module.split(".", 1)[0]
    try:
        return metadata.version(top)
    except metadata.PackageNotFoundError:
        return "unknown"
