"""Confinement: every output a rule declares lies inside the project folder and outside `.dreammake/`.

Checked once when a rule is declared (and again for each path a wildcard pattern is filled with), so
`dreammake all` and `dreammake clean` can never write or remove anything that is not the project's.
Inputs may live anywhere: they are only read.
"""

from __future__ import annotations

import os

from dreammake.state import STATE_DIR


class OutsideProject(ValueError):
    """An output path that would escape the project folder (the message says why)."""


def confine(path: str, root: str) -> str:
    """The target key (relative, normalised) of an output path declared in a project rooted at `root`.

    Symbolic links are followed, so a folder linked to somewhere outside the project is refused too.
    Raises OutsideProject for the project folder itself, a path outside it, or one inside `.dreammake/`.
    """
    root = os.path.realpath(root)
    absolute = os.path.join(root, path)
    resolved = os.path.realpath(absolute)
    if resolved == root:
        raise OutsideProject(f"output {path!r} is the project folder itself")
    if os.path.commonpath([resolved, root]) != root:
        raise OutsideProject(f"output {path!r} resolves to {resolved}, outside the project folder {root}")
    inside = os.path.relpath(resolved, root)
    if inside == STATE_DIR or inside.startswith(STATE_DIR + os.sep):
        raise OutsideProject(f"output {path!r} lies in {STATE_DIR}/, which holds dreammake's own state")
    if os.path.isabs(path):
        return os.path.relpath(os.path.normpath(absolute), root)
    return path
