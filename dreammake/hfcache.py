"""Where Hugging Face keeps its caches, as huggingface_hub and datasets compute it (HF_HOME, HF_HUB_CACHE,
HUGGINGFACE_HUB_CACHE, HF_DATASETS_CACHE, XDG_CACHE_HOME), without importing either. A leaf: the Hub client,
the dataset source and the cards' model facts all read it."""

from __future__ import annotations

import os


def hf_home() -> str:
    """Hugging Face's home folder (HF_HOME, else XDG_CACHE_HOME/huggingface)."""
    return os.path.expanduser(os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"),
                                                                "huggingface")))


def datasets_cache() -> str:
    """The `datasets` cache folder, as `datasets` itself resolves it (without importing it when not loaded)."""
    import sys

    config = sys.modules.get("datasets.config")
    if config is not None:
        return os.fspath(config.HF_DATASETS_CACHE)
    home = hf_home()
    return os.path.expanduser(os.getenv("HF_DATASETS_CACHE", os.path.join(home, "datasets")))


def hub_cache() -> str:
    """The huggingface_hub file cache folder."""
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        return os.fspath(constants.HF_HUB_CACHE)
    home = hf_home()
    return os.path.expanduser(os.getenv("HF_HUB_CACHE", os.getenv("HUGGINGFACE_HUB_CACHE",
                                                                  os.path.join(home, "hub"))))
