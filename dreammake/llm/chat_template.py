"""The chat template a tokenizer folder carries, read from its files (no transformers import at plan time).

Both local backends put `dreammake.content.text_hash` of this text in their identity.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_chat_template(folder: Path) -> str | None:
    """The chat template of a tokenizer or checkpoint folder, in transformers' three layouts: chat_template.jinja,
    else chat_template.json, else tokenizer_config.json. Named templates (a list) come back as sorted JSON."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError):
            continue
        if isinstance(template, list):  # [{"name": ..., "template": ...}, ...]
            template = json.dumps(template, sort_keys=True)
        if template:
            return str(template)
    return None
