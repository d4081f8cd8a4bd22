"""'Did you mean …?' for mistyped names: options, rule kinds, targets, columns."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid name closest to a mistyped one, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid name, or '' when none is close."""
    match = closest(name, choices)
    return f" (did you mean {match}?)" if match else ""


def check_keywords(what: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise TypeError naming the first keyword of `given` that is not in `valid`, with the closest valid one.

    `what` names the callee, e.g. "llm()" or "rules.train_sft()". The Dreamfile loader turns the
    TypeError into a one-line error at the calling line.
    """
    valid = sorted(set(valid))
    for name in given:
        if name not in valid:
            raise TypeError(f"{what} got an unknown option {name!r}{did_you_mean(name, valid)}")


def checked(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """`fn` with its keyword arguments checked by `check_keywords` (a function taking **kwargs checks its own)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return fn
    names = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        check_keywords(what, kwargs, names)
        return fn(*args, **kwargs)

    return call
