"""Target paths: normalisation, folder targets, and Snakemake-style wildcards."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property

_WILDCARD = re.compile(r"\{\s*(\w+)\s*(?:,\s*((?:[^{}]|\{[^{}]*\})+))?\s*\}")


def normalize(path: str) -> str:
    """Canonical key for a target path: normalised, relative, no trailing slash."""
    path = os.fspath(path)
    if path.startswith("./") or "//" in path or "/." in path or path.endswith("/"):
        path = os.path.normpath(path)
    return path


def is_folder(path: str) -> bool:
    """A path written with a trailing slash declares a folder target (a checkpoint)."""
    return os.fspath(path).endswith(("/", os.sep))


def without_wildcards(path: str) -> str:
    """The path with each `{name}` wildcard replaced by a plain name (to check where a pattern points)."""
    return _WILDCARD.sub("w", path)


@dataclass(frozen=True)
class Pattern:
    """An output path with wildcards, e.g. `targets/{split}.parquet`."""

    text: str

    @cached_property
    def regex(self) -> re.Pattern[str]:
        parts, last, seen = [], 0, set()
        for m in _WILDCARD.finditer(self.text):
            parts.append(re.escape(self.text[last : m.start()]))
            name, constraint = m.group(1), m.group(2)
            if name in seen:
                parts.append(f"(?P={name})")
            else:
                parts.append(f"(?P<{name}>{constraint or '.+'})")
                seen.add(name)
            last = m.end()
        parts.append(re.escape(self.text[last:]))
        return re.compile("".join(parts) + r"\Z")

    @cached_property
    def literal_prefix(self) -> str:
        m = _WILDCARD.search(self.text)
        return self.text[: m.start()] if m else self.text

    def match(self, path: str) -> dict[str, str] | None:
        """The wildcard values that make this pattern equal `path`, or None."""
        if not path.startswith(self.literal_prefix):
            return None
        m = self.regex.match(path)
        return m.groupdict() if m else None


def fill(path: str, wildcards: dict[str, str]) -> str:
    """Substitute wildcard values into a path; raises KeyError naming a missing wildcard."""
    if not wildcards and "{" not in path:
        return path
    return _WILDCARD.sub(lambda m: wildcards[m.group(1)], path)


def expand(pattern: str, **values: object) -> list[str]:
    """All combinations of wildcard values, like Snakemake's expand():
    `expand("targets/{split}.parquet", split=["train", "test"])`."""
    import itertools

    keys = list(values)
    lists = [[v] if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") else list(v) for v in values.values()]
    return [pattern.format(**dict(zip(keys, combo))) for combo in itertools.product(*lists)]
