"""'Did you mean …?' for mistyped names: options, rule kinds, targets, columns."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
