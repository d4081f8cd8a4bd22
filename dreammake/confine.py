"""Confinement: every output a rule declares lies inside the project folder and outside `.dreammake/`.

Checked once when a rule is declared (and again for each path a wildcard pattern is filled with), so
`dreammake all` and `dreammake clean` can never write or remove anything that is not the project's.
Inputs may live anywhere: they are only read.
"""

from __future__ import annotations

import functools
import os

from dreammake.state import STATE_DIR


class OutsideProject(ValueError):
    """An output path that would escape the project folder (the message says why)."""


def confine(path: str, root: str) -> str:
    """The target key (relative, normalised) of an output path declared in a project rooted at `root`.

    Symbolic links among the folders are followed, so a folder linked to somewhere outside the project is
    refused too. (A link as the output itself is safe: placing an output renames over the link, and removing
    one removes the link, never what it points to.) Raises OutsideProject for the project folder itself, a
    path outside it, or one inside `.dreammake/`.
    """
    if not os.path.isabs(path) and ".." not in path and "//" not in path:  # the common shape: `targets/x.parquet`
        folder, name = os.path.split(path)
        if name not in ("", ".", STATE_DIR) and _folder_inside(folder, root):
            return path
    return _resolved(path, root)


def _resolved(path: str, root: str) -> str:
    """`confine` for any path: resolve its folders and check where it lands."""
    root = _real_folder(root)
    absolute = os.path.normpath(os.path.join(root, path))
    folder, name = os.path.split(absolute)
    resolved = os.path.join(_real_folder(folder), name)
    if resolved == root:
        raise OutsideProject(f"output {path!r} is the project folder itself")
    prefix = root.rstrip(os.sep) + os.sep  # (string tests: this runs once per output of every rule)
    if not resolved.startswith(prefix):
        raise OutsideProject(f"output {path!r} resolves to {resolved}, outside the project folder {root}")
    inside = resolved[len(prefix):]
    if inside == STATE_DIR or inside.startswith(STATE_DIR + os.sep):
        raise OutsideProject(f"output {path!r} lies in {STATE_DIR}/, which holds dreammake's own state")
    if os.path.isabs(path):
        return absolute[len(prefix):] if absolute.startswith(prefix) else os.path.relpath(absolute, root)
    return path


@functools.lru_cache(maxsize=4096)
def _folder_inside(folder: str, root: str) -> bool:
    """Whether a relative folder resolves inside `root` and outside `.dreammake/` (memoised: rules made in a
    loop share their folders)."""
    if not folder:
        return True
    try:
        _resolved(os.path.join(folder, "x"), root)
    except OutsideProject:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    """A folder with every symbolic link resolved (memoised: rules made in a loop share their folders)."""
    return os.path.realpath(folder)
