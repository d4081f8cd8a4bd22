"""Damaged DuckDB files (the state and the row cache): recognising the damage, the one-line error that names
the recovery command, and setting a damaged file aside. A leaf module: both databases use it."""

from __future__ import annotations

import os
from pathlib import Path

from dreammake.errors import DreamError

_DAMAGE = ("IOException", "InternalException", "SerializationException", "FatalException", "CorruptionException")


def is_damage(exc: BaseException) -> bool:
    """Whether a DuckDB error says the database file is damaged (rather than a query being wrong)."""
    return type(exc).__module__.startswith(("duckdb", "_duckdb")) and type(exc).__name__ in _DAMAGE


def damage_error(path: Path, exc: BaseException, hint: str) -> DreamError:
    """The one-line error for a damaged database file, with the command that recovers."""
    try:
        where = os.path.relpath(path)
    except ValueError:
        where = str(path)
    reason = " ".join(str(exc).split()).replace(str(path), where)
    return DreamError(f"{where} is damaged ({reason[:160]})", hint=hint)


def set_aside(path: Path) -> str | None:
    """Rename a database file (and its write-ahead log) to `<name>.damaged`; returns the new name if it existed."""
    kept = None
    for suffix in ("", ".wal"):
        source = Path(str(path) + suffix)
        if source.exists():
            target = Path(str(path) + ".damaged" + suffix)
            os.replace(source, target)
            kept = kept or str(target)
    return kept
