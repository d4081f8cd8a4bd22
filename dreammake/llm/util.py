"""Small helpers shared by the backends: messages, seeds, stop strings, secret scrubbing."""
from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import xxhash

from .base import Request

DEFAULT_MAX_TOKENS = 256


def build_messages(req: Request, system_prompt: str | None) -> list[dict[str, str]]:
    """The request's messages, with the backend's system prompt prepended when given and the
    messages carry no system message of their own."""
    msgs = [dict(m) for m in req.messages]
    if system_prompt and not any(m.get("role") == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def effective_seed(seed: int | None, sample_index: int) -> int | None:
    """The seed actually used for one sample: the request's seed for sample 0, a stable mix of
    (seed, sample_index) for later samples (so n samples sharing a seed differ), None if unseeded."""
    if seed is None:
        return None
    if sample_index == 0:
        return int(seed)
    return xxhash.xxh64_intdigest(f"{int(seed)}:{int(sample_index)}".encode()) & 0x7FFFFFFF


def stop_list(params: dict[str, Any]) -> list[str]:
    stop = params.get("stop")
    if not stop:
        return []
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop if s]


def apply_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut text at the earliest stop string; returns (text, whether a stop string was found)."""
    cut = -1
    for s in stops:
        i = text.find(s)
        if i != -1 and (cut == -1 or i < cut):
            cut = i
    return (text, False) if cut == -1 else (text[:cut], True)


_KEY_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{4,}|sk_[A-Za-z0-9_\-*]{8,}|Bearer\s+\S+|(?:api[_-]?key|token)=[^&\s]+)",
    re.IGNORECASE,
)


def scrub(text: str, secrets: list[str | None] = ()) -> str:
    """One line, bounded length, with any API keys (given or key-looking) redacted."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    text = _KEY_PATTERNS.sub("***", text)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def public_url(url: str | None) -> str | None:
    """A URL without userinfo, query or fragment (those may carry credentials)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def api_key_from(api_key: str | None, api_key_env: str | None) -> str | None:
    """The key to send: `api_key=` as given in the Dreamfile, else the variable `api_key_env` names."""
    if api_key:
        return api_key
    return os.environ.get(api_key_env) if api_key_env else None
