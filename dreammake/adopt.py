"""Adopting finished targets whose records were lost (a killed run, a rebuilt state).

Every target says which build made it: a Parquet file in its metadata (`dreammake.tables.build_info`,
verified against the body hash in its footer), a checkpoint folder in a marker file inside it,
`dreammake-target.json`, written when the folder is put in place (skipped by the folder's content
hash, like its cards). A target whose build fingerprint equals the planned one, and whose content
is what that build wrote, is recorded instead of rebuilt.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from dreammake.targets import TARGET_MARKER, TEMP_MARK

PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class Adopted:
    """What an adopted target's record needs beyond what the planner knows."""

    data_hash: str | None
    rows: int | None


def write_marker(folder: str, rule: str, fingerprint: str, content_hash: str) -> None:
    """Say in a folder target which build it holds (atomically: a kill leaves the old marker or the new)."""
    path = os.path.join(folder, TARGET_MARKER)
    tmp = os.path.join(folder, f".{TARGET_MARKER}{TEMP_MARK}{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump({"rule": rule, "fingerprint": fingerprint, "content_hash": content_hash}, f)
    os.replace(tmp, path)


def check(path: str, fingerprint: str, content_hash: str) -> Adopted | None:
    """Adopt `path` (current content hash `content_hash`) as built with `fingerprint`, or None."""
    if os.path.isdir(path):
        try:
            with open(os.path.join(path, TARGET_MARKER)) as f:
                marker = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(marker, dict) or marker.get("fingerprint") != fingerprint \
                or marker.get("content_hash") != content_hash:
            return None
        return Adopted(None, None)
    if path.endswith(PARQUET):
        from dreammake.tables import build_info

        info = build_info(path, fingerprint)
        if info is None:
            return None
        return Adopted(info.data_hash, info.rows)
    return None
