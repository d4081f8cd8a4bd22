"""Row spools: append-only files of model responses, written the moment each response arrives.

A spool is a text file of JSON Lines, one object per response:

    {"key": "<xxh3-128 hex>", "model": "<identity hash>", "text": "...", "finish_reason": "stop",
     "prompt_tokens": 5, "completion_tokens": 3, "cost_usd": 0.0, "latency_s": 0.01,
     "served_model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb"}

Each line goes to the operating system in one `write` call as soon as it is appended, so a
killed process loses nothing it appended. A line cut short by a crash (no final newline, or not
valid JSON) is skipped by the reader; a writer that reopens such a file first ends the torn line.
Readers take an offset and report the offset after the last complete line, so a consumer can
ingest a growing file piece by piece. This module needs nothing but the standard library: a spool
written anywhere (a worker on another node) can be read anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

SUFFIX = ".jsonl"
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # built once: dumps(**kw) is not
FIELDS = ("key", "model", "text", "finish_reason", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s",
          "served_model", "system_fingerprint")  # the last two: what an API said served the answer (may be absent)


class SpoolWriter:
    """Appends records to one spool file (created on the first append). `end` is the file's size after
    the last append (valid while this is the file's only writer)."""

    def __init__(self, path: str):
        self.path = path
        self.end = 0
        self._fd: int | None = None

    def _open(self) -> int:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            size += os.write(fd, b"\n")  # end a line torn by a crash, so it cannot merge with the next one
        self.end = size
        return fd

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line, straight to the OS (it survives SIGKILL of this process)."""
        if self._fd is None:
            self._fd = self._open()
        data = (_ENCODE(record) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.end += len(data)

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read(path: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete records of `path` from byte `offset`, and the offset after the last complete line.

    Lines that are not valid JSON objects with a `key` (a torn write) are skipped."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a last line without its newline is still being written (or was torn)
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("key"), str):
            records.append(record)
    return records, offset + end


def files(folder: str) -> Iterator[str]:
    """The spool files in `folder` (none when it does not exist), in name order."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(SUFFIX):
            yield os.path.join(folder, name)
