"""`target(path)`: a reference to an output of the Dreamfile, usable as a model or an input elsewhere.

A leaf module: the Dreamfile language, model handles, embedders and trainers all recognise references.
"""

from __future__ import annotations


class TargetRef(str):
    """A reference to another rule's output, e.g. `trained = target("models/x/")`.

    It is a plain path string everywhere a path is expected; backends treat it as a model.
    """

    __slots__ = ()


def target(path: str) -> TargetRef:
    """Name an output of this Dreamfile so it can be used as a model or input elsewhere."""
    return TargetRef(path)
