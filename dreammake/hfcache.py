"""Where Hugging Face keeps its caches, as huggingface_hub and datasets compute it, without importing them
(a leaf module: the dataset sources and the card registry both ask it)."""

from __future__ import annotations

import os
import sys


def _path(value: str) -> str:
    return os.path.expandvars(os.path.expanduser(value))


def hf_home() -> str:
    """Hugging Face's home folder: HF_HOME, else XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface."""
    if os.environ.get("HF_HOME"):
        return _path(os.environ["HF_HOME"])
    return _path(os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"))


def hub_cache() -> str:
    """The huggingface_hub file cache: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub (once
    huggingface_hub is imported, the folder it settled on)."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        return os.fspath(constants.HF_HUB_CACHE)
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return _path(os.environ[name])
    return os.path.join(hf_home(), "hub")


def datasets_cache() -> str:
    """The `datasets` cache: HF_DATASETS_CACHE, else HF_HOME/datasets (once datasets is imported, its own)."""
    config = sys.modules.get("datasets.config")
    if config is not None:
        return os.fspath(config.HF_DATASETS_CACHE)
    if os.environ.get("HF_DATASETS_CACHE"):
        return _path(os.environ["HF_DATASETS_CACHE"])
    return os.path.join(hf_home(), "datasets")
