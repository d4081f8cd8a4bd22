"""Cards for targets: lineage traced through the DAG, rendered as Hub README.md files and JSON.

A folder target (a checkpoint) gets `README.md` and `dreammake-card.json` inside it; a file
target such as `targets/tweets.parquet` gets `targets/tweets.README.md` and
`targets/tweets.dreammake-card.json` beside it; a folder target also holds `dreammake-target.json`, the
build it came from (see `dreammake.adopt`). The layout is `dreammake.targets`'; importing this package
loads no Jinja.
"""

from __future__ import annotations

from dreammake.targets import CARD_FILES, CARD_JSON, CARD_MD, TARGET_MARKER, target_for


def card_paths(target: str) -> tuple[str, str]:
    """Where the Markdown and JSON cards of a target live: inside a folder, beside a file."""
    return target_for(target).card_paths()


__all__ = ["CARD_FILES", "CARD_JSON", "CARD_MD", "TARGET_MARKER", "card_paths"]
