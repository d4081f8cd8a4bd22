"""User-facing errors: one line, exit code 2, pointing at the Dreamfile line or rule."""

from __future__ import annotations


class DreamError(Exception):
    """A mistake the user can fix (bad Dreamfile, missing input, failed job). Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The error as one line: `where: message (hint)`."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class JobFailed(DreamError):
    """A job's action raised; carries the rule name and the underlying error."""


def first_line(exc: BaseException) -> str:
    """`TypeName: first line of the message`: a library's exception as one line of ours."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
