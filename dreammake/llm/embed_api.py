"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (any server or provider the aiohttp client
reaches), for `embed`, `retrieve`, `cosine_similarity`, RAG and retrieval few-shot rules:

    api = llm("openai/text-embedding-3-small")          # or llm("openai/NAME", api_base="http://127.0.0.1:8000/v1")
    rule("vectors", input="t/docs.parquet", output="t/vectors.parquet", run=rules.embed(model=api))

Texts are sent in batches (`batch_size` per request) with the chat client's concurrency, rate limits and bounded
retries, but cached row by row like generations: each text's vector is one row of the row cache (key: the model's
identity, the task, the text), spooled as its batch arrives, so a rerun or a killed run asks only for what is missing.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from .base import LLMError, Request, Response
from .openai_http import OpenAIHTTPBackend
from .pool import Server

if TYPE_CHECKING:
    import numpy as np

    from dreammake.actions import JobContext
    from dreammake.llm.handle import LLM

TASK = {"task": "embedding"}  # the params part of an embedding's cache key (never equal to a generation's)


class EmbeddingBackend(OpenAIHTTPBackend):
    """`/embeddings` of an OpenAI-compatible API: one Request holds a batch of texts (its messages' contents), and
    its Response's text is the JSON list of their vectors (base64 float32)."""

    backend_name = "openai_embeddings"

    async def _call(self, req: Request, server: Server) -> Response:
        texts = [m["content"] for m in req.messages]
        text, status = await self._post(server, "embeddings", {"model": self.name, "input": texts})
        try:
            data = json.loads(text)
            rows = sorted(data["data"], key=lambda d: d.get("index", 0))
            vectors = [pack(d["embedding"]) for d in rows]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self.malformed(text, status) from None
        if len(vectors) != len(texts):
            raise LLMError(f"{self.model}: {len(vectors)} embeddings for {len(texts)} texts")
        tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
        from .costs import token_cost

        return Response(text=json.dumps(vectors), prompt_tokens=tokens,
                        cost_usd=token_cost(self.provider or "openai", self.name, tokens, 0) if self._price else 0.0,
                        served_model=data.get("model"))


def pack(vector: list[float]) -> str:
    """A vector as base64 of its float32 bytes (what the row cache keeps)."""
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()


def unpack(text: str) -> np.ndarray:
    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype=np.float32)


def identity(handle: LLM) -> dict[str, Any]:
    """An API embedder's identity: its model handle's (name, API base; never credentials)."""
    return {"embedder": "api", **handle.identity()}


def backend(handle: LLM) -> EmbeddingBackend:
    """An embedding client for a model handle (the caller closes it)."""
    if not isinstance(handle.spec, str) or handle.target is not None:
        raise LLMError(f"{handle.name}: an API embedder is an llm('PROVIDER/NAME', ...) of an OpenAI-compatible API")
    return EmbeddingBackend(handle.spec, **handle.options)


def encode(ctx: JobContext, handle: LLM, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length vectors (float32, one row per text) from the row cache, asking the API only for the misses."""
    import numpy as np

    from dreammake.errors import DreamError
    from dreammake.llm.cache import KeyMaker, RowCache
    from dreammake.llm.generate import _add_stats, spool_path

    rule = ctx.job.rule
    if ctx.state is None:
        raise DreamError(f"rule {rule.name!r}: API embeddings need the project state")
    model_hash = handle.identity_hash()
    key = KeyMaker(model_hash, TASK).key
    keys = [key(t, None, 0) for t in texts]
    cache = RowCache(ctx.state.cache_db, spool_path(str(ctx.state.dir), rule.name, ctx.job.name))
    try:
        found = dict(zip(keys, cache.lookup(keys).column("text").to_pylist()))
        missing = list({k: t for k, t in zip(keys, texts) if found[k] is None}.items())
        _add_stats(ctx, llm_cached=len(keys) - sum(1 for k in keys if found[k] is None))
        batches = [missing[i:i + batch_size] for i in range(0, len(missing), batch_size)]
        spend = {"llm_calls": 0, "prompt_tokens": 0, "cost_usd": 0.0}

        def on_result(index: int, response: Response) -> None:
            for (k, _t), vector in zip(batches[index], json.loads(response.text)):
                cache.add(k, model_hash, Response(text=vector, served_model=response.served_model))
                found[k] = vector
            spend["llm_calls"] += 1
            spend["prompt_tokens"] += response.prompt_tokens
            spend["cost_usd"] += response.cost_usd
            cache.commit_if_due()

        if batches:
            requests = [Request(tuple({"role": "user", "content": t} for _k, t in b)) for b in batches]
            client = backend(handle)
            try:
                client.generate(requests, on_result, ctx.cancel)
            except LLMError as exc:
                raise DreamError(f"rule {rule.name!r}: {exc}", rule.where) from None
            finally:
                client.close()
                _add_stats(ctx, **spend)
        if any(found[k] is None for k in keys):
            raise DreamError(f"rule {rule.name!r}: interrupted with embeddings missing", rule.where)
    finally:
        cache.close()
    vectors = np.stack([unpack(found[k]) for k in keys]) if keys else np.zeros((0, 0), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True) if keys else 1.0
    return vectors / np.where(norms == 0, 1.0, norms)
