"""The one interface every LLM backend implements (shared contract; do not change field names)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Request:
    """One generation request: chat messages, generation params, seed and sample index."""

    messages: tuple[dict[str, str], ...]  # ({"role": "system"|"user"|"assistant", "content": str}, ...)
    params: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, max_tokens, stop, ...
    seed: int | None = None
    sample_index: int = 0


@dataclass
class Response:
    """What a backend returns for one request."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    served_model: str | None = None  # the model the API says answered (its `model` field), when it says
    system_fingerprint: str | None = None  # the API's backend configuration id, when it sends one


class LLMError(Exception):
    """A generation failure that must stop the rule (bad request, auth, retries exhausted).

    The message is one line, names the model, and never contains an API key.
    """


OnResult = Callable[[int, Response], None]  # (index into the requests list, response)


class Backend(Protocol):
    """A model backend: turns a batch of requests into responses, streaming them as they finish.

    Optional: a local backend may also have ``place(gpus: int) -> None``. A generation worker calls it, when the
    backend has it, before the first ``generate``, with the number of GPUs its shard owns (``CUDA_VISIBLE_DEVICES``
    already narrowed to them; 0: none assigned, keep the default). The backend then loads onto those GPUs (the
    transformers backend: the GPU, or ``device_map="auto"`` over several; vLLM: ``tensor_parallel_size``).
    Placement changes where a model runs, never what it is, so it must not enter ``identity()``.
    """

    def identity(self) -> dict[str, Any]:
        """Everything that decides the model's outputs (backend, name, revision/weights hash,
        chat template, system prompt, quantization, adapter, api_base). Never keys or tokens."""

    def generate(self, requests: list[Request], on_result: OnResult, cancel: threading.Event) -> None:
        """Generate every request; call on_result(i, response) as each finishes (any order,
        from the calling thread or not, but never concurrently). Stop early when cancel is set.
        Raise LLMError on a failure that must stop the run."""

    def close(self) -> None:
        """Release sessions, servers, GPU memory."""
