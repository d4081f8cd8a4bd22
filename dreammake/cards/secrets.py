"""Keeping credentials out of cards, reports and uploads."""

from __future__ import annotations

import os
from typing import Any

from dreammake.llm.handle import is_secret

MIN_SECRET_LEN = 8  # shorter values (e.g. "1", "true") would redact ordinary text


def scrub(obj: Any) -> Any:
    """Plain data with every mapping entry whose key names a credential removed (recursively)."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if not (isinstance(k, str) and is_secret(k))}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def secret_values() -> list[str]:
    """Values of environment variables whose names hold credentials (HF_TOKEN, OPENAI_API_KEY, ...)."""
    values = {v for k, v in os.environ.items() if is_secret(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with any credential from the environment replaced by `***`."""
    for value in secret_values():
        if value in text:
            text = text.replace(value, "***")
    return text
