"""Keeping credentials out of cards, reports, uploads and stored command lines."""

from __future__ import annotations

import os
import re
from typing import Any

from dreammake.llm.handle import is_secret
from dreammake.llm.util import _KEY_PATTERNS as KEY_PATTERNS  # key-looking values (sk-..., Bearer ...)

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


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")  # scheme://user:password@host
_ASSIGNED = re.compile(r"(?<![\w.-])([A-Za-z0-9_.-]+)=([^\s&;,?]+)")  # name=value, also in URL queries
_OPTION = re.compile(r"(?<!\S)(--?([A-Za-z0-9_-]+)\s+)([^-\s]\S*)")  # --name value


def scrub_command(text: str) -> str:
    """A command line fit to store or show: URL credentials, values of key-like names (`api_key=...`,
    `--token X`), key-looking strings and credentials from the environment become `***`."""
    text = redact(text)
    text = _USERINFO.sub(r"\1***@", text)
    text = _ASSIGNED.sub(lambda m: f"{m.group(1)}=***" if is_secret(m.group(1)) else m.group(0), text)
    text = _OPTION.sub(lambda m: f"{m.group(1)}***" if is_secret(m.group(2)) else m.group(0), text)
    return KEY_PATTERNS.sub(lambda m: m.group(0) if m.group(0).endswith("=***") else "***", text)
