"""Helpers shared by the user-experience tests: a fake terminal stream and the one-error-line check."""

from __future__ import annotations

import io


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, so dreammake draws rich output (progress, tables) into it."""

    def isatty(self) -> bool:
        return True


def assert_one_error_line(out: str) -> str:
    """Check that `out` is exactly one non-empty line, an `error: ...` without a traceback; return it."""
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    assert "Traceback" not in out
    return lines[0]
