"""Token prices from litellm's bundled cost table, read lazily without importing litellm
(its import takes seconds and may try to fetch the table over the network)."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

_TABLE_FILE = "model_prices_and_context_window_backup.json"


@functools.lru_cache(maxsize=1)
def cost_table() -> dict[str, dict[str, Any]]:
    """litellm's model cost table ({} when litellm is not installed)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    for loc in spec.submodule_search_locations:
        path = Path(loc) / _TABLE_FILE
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                break
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm

        return dict(litellm.model_cost)
    except Exception:  # noqa: BLE001 - no table means no cost, never a failure
        return {}


def model_entry(provider: str | None, name: str) -> dict[str, Any] | None:
    """The table entry for a model, trying ``provider/name`` then ``name``."""
    table = cost_table()
    for key in ((f"{provider}/{name}" if provider else None), name):
        if key and key in table:
            entry = table[key]
            if not provider or entry.get("litellm_provider") in (provider, None) or "/" in key:
                return entry
    return None


def provider_of(name: str) -> str | None:
    """litellm's provider for a bare model name (e.g. gpt-4o-mini -> openai), if known."""
    entry = cost_table().get(name)
    return entry.get("litellm_provider") if entry else None


def token_cost(provider: str | None, name: str, prompt_tokens: int, completion_tokens: int,
               batch: bool = False) -> float:
    """The price of a call; `batch`: at the provider's batch-API price (the table's `*_batches` prices, else half)."""
    entry = model_entry(provider, name)
    if not entry:
        return 0.0

    def price(kind: str) -> float:
        if batch and entry.get(f"{kind}_cost_per_token_batches") is not None:
            return float(entry[f"{kind}_cost_per_token_batches"])
        return float(entry.get(f"{kind}_cost_per_token") or 0.0) * (0.5 if batch else 1.0)

    return prompt_tokens * price("input") + completion_tokens * price("output")
