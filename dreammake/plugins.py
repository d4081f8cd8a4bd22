"""Named factories behind dreammake's open seams: rule kinds, LLM backends, executors.

Each seam holds one `Registry`. The built-ins register into it exactly as a third-party package can:
by name, with the factory itself or a lazy ``"module:attribute"`` reference (imported on first use, so a
Dreamfile that uses no kind imports no rule module). A package can also declare its factories as Python
entry points in the seam's group (``dreammake.rule_kinds``, ``dreammake.backends``, ``dreammake.executors``);
those are read only when a name is not registered, once per process (importing `importlib.metadata` and
scanning the installed distributions costs ~50 ms, more than a whole no-op check may take).

A leaf module: it imports only `errors` and `suggest`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dreammake.errors import DreamError
from dreammake.suggest import closest

T = TypeVar("T")


class UnknownName(LookupError):
    """A name no built-in and no installed plugin registered. The message is one line with "did you mean"."""


class PluginError(DreamError):
    """A registered reference or entry point that fails to load."""


def load_reference(reference: str) -> Any:
    """The object a ``"package.module:attribute.path"`` reference names (imported now)."""
    module, _, attribute = reference.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class _Lazy:
    """A factory not imported yet: a ``"module:attribute"`` reference and who declared it."""

    reference: str
    source: str

    def __str__(self) -> str:
        return f"{self.reference}, {self.source}"


class Registry(Generic[T]):
    """Factories by name for one seam; `group` is its entry-point group, `what` names an entry in errors
    (`plural`, in the list of known names, defaults to `what` + "s")."""

    def __init__(self, group: str, what: str, plural: str | None = None):
        self.group = group
        self.what = what
        self.plural = plural or what + "s"
        self._entries: dict[str, T | _Lazy] = {}
        self._scanned = False

    def register(self, name: str, factory: T | str) -> None:
        """Add `factory` (or a lazy ``"module:attribute"`` reference to it) under `name`. A name is
        registered once: registering it again with another factory is an error, so two plugins cannot
        silently shadow each other or a built-in."""
        entry: T | _Lazy = _Lazy(factory, "registered in code") if isinstance(factory, str) else factory
        known = self._entries.get(name)
        if known is not None and known != entry and not (isinstance(known, _Lazy) and known.reference == factory):
            raise ValueError(f"{self.what} {name!r} is already registered ({_describe(known)})")
        self._entries.setdefault(name, entry)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or (self._scan() and name in self._entries)

    def get(self, name: str) -> T:
        """The factory registered as `name`, imported on first use; `UnknownName` when there is none."""
        if name not in self:
            raise UnknownName(f"dreammake has no {self.what} {name!r}{self.suggestion(name)}")
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            try:
                loaded: T = load_reference(entry.reference)
            except (ImportError, AttributeError) as exc:
                raise PluginError(f"{self.what} {name!r} ({entry}) failed to load: {type(exc).__name__}: {exc}"
                                  ) from None
            self._entries[name] = entry = loaded
        return entry

    def names(self) -> list[str]:
        """Every registered name, installed plugins' included, sorted."""
        self._scan()
        return sorted(self._entries)

    def suggestion(self, name: str) -> str:
        """' (did you mean X?)' for the closest registered name, else '; known <plural>: ...'."""
        names = self.names()
        match = closest(name, names)
        if match is not None:
            return f" (did you mean {match}?)"
        return f"; known {self.plural}: {', '.join(names)}" if names else ""

    def _scan(self) -> bool:
        """Add the entry points of `group` (once; a name registered in code wins). True if it scanned now."""
        if self._scanned:
            return False
        self._scanned = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.group):
            dist = getattr(point.dist, "name", None) or "an installed package"
            self._entries.setdefault(point.name, _Lazy(point.value.split("[")[0].strip(), f"entry point of {dist}"))
        return True


def _describe(entry: Any) -> str:
    if isinstance(entry, _Lazy):
        return str(entry)
    return f"{getattr(entry, '__module__', '?')}.{getattr(entry, '__qualname__', type(entry).__name__)}"
