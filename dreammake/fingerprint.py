"""Fingerprints: xxh3-128 over a canonical encoding of what decides a job's outputs.

A job's fingerprint combines five components, each hashed separately so the planner
can say which one changed: the rule kind and its version, the action's code, the
params, the model identity, and the content hashes of every input.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import json
import math
import os
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
_code_cache: dict[int, tuple[Any, str]] = {}  # id(function) -> (function, hash); the function is kept alive


class _StripDocstrings(ast.NodeTransformer):
    def _strip(self, node: Any) -> Any:
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def _source_ast(fn: Callable[..., Any]) -> tuple[str, set[str]]:
    """The function's AST without comments, formatting or docstrings, and the global names it reads."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = _StripDocstrings().visit(ast.parse(source))
    except (OSError, TypeError, SyntaxError):  # e.g. a lambda whose source line does not parse alone
        return _code_object_hash(fn.__code__), _code_names(fn.__code__)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return ast.dump(tree, annotate_fields=False, include_attributes=False), names


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
    """Hash of a function's behaviour: its AST (comments/whitespace/docstrings ignored),
    the Dreamfile functions it calls, its closure values and defaults.

    Functions from installed packages are identified by module, name and package version.
    """
    fn = inspect.unwrap(fn) if hasattr(fn, "__wrapped__") else fn
    code = getattr(fn, "__code__", None)
    if code is None:  # a class or a callable object
        target = fn if isinstance(fn, type) else type(fn)
        return digest(f"{target.__module__}.{target.__qualname__}")
    cached = _code_cache.get(id(fn))
    if cached is not None and cached[0] is fn:
        return cached[1]
    module = getattr(fn, "__module__", None) or ""
    if module not in _LOCAL_MODULES and not code.co_filename.startswith(os.getcwd()):
        result = digest(f"{module}.{fn.__qualname__}@{_package_version(module)}")
        _code_cache[id(fn)] = (fn, result)
        return result
    text, names = _source_ast(fn)
    parts = [text, canonical(fn.__defaults__ or ()), canonical(_closure_values(fn))]
    seen = _seen | {id(code)}
    for name in sorted(names):
        if name.startswith("__") or name not in fn.__globals__:
            continue
        value = fn.__globals__[name]
        if inspect.isfunction(value):
            if getattr(value, "__module__", "") in _LOCAL_MODULES and id(value.__code__) not in seen:
                parts.append(f"{name}={code_hash(value, seen)}")
        elif isinstance(value, type):
            if value.__module__ in _LOCAL_MODULES:
                parts.append(f"{name}=class:{_class_source(value)}")
        elif not inspect.ismodule(value):
            try:
                parts.append(f"{name}={canonical(value)}")
            except (TypeError, ValueError):
                parts.append(f"{name}:{type(value).__qualname__}")
    result = digest("\n".join(parts))
    _code_cache[id(fn)] = (fn, result)
    return result


_LOCAL_MODULES = ("__dreamfile__", "__main__")


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

