"""Built-in rule kinds, used in a Dreamfile as `rules.<kind>(...)`.

Each family lives in its own module and is imported only when first used, so a
Dreamfile that uses none of them loads fast.
"""

from __future__ import annotations

import importlib
from typing import Any

# kind name -> module (relative to this package) that defines it
_KINDS: dict[str, str] = {
    "prompt": "prompts",
}


def __getattr__(name: str) -> Any:
    module = _KINDS.get(name)
    if module is None:
        raise AttributeError(f"dreammake has no rule kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(_KINDS)
