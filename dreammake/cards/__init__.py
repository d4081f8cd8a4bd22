"""Cards for targets: lineage traced through the DAG, rendered as Hub README.md files and JSON.

A folder target (a checkpoint) gets `README.md` and `dreammake-card.json` inside it; a file
target such as `targets/tweets.parquet` gets `targets/tweets.README.md` and
`targets/tweets.dreammake-card.json` beside it. A folder target also holds `dreammake-target.json`,
the build it came from (see `dreammake.adopt`). This module only holds these names, so the engine
can import it without loading Jinja.
"""

from __future__ import annotations

import os

CARD_MD = "README.md"
CARD_JSON = "dreammake-card.json"
TARGET_MARKER = "dreammake-target.json"
CARD_FILES = (CARD_MD, CARD_JSON, TARGET_MARKER)  # files dreammake adds to a folder target: not its content


def card_paths(target: str) -> tuple[str, str]:
    """Where the Markdown and JSON cards of a target live: inside a folder, beside a file."""
    if os.path.isdir(target):
        return os.path.join(target, CARD_MD), os.path.join(target, CARD_JSON)
    stem = os.path.splitext(target)[0]
    return f"{stem}.{CARD_MD}", f"{stem}.{CARD_JSON}"


__all__ = ["CARD_FILES", "CARD_JSON", "CARD_MD", "TARGET_MARKER", "card_paths"]
