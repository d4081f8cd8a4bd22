"""Pick a backend for a model spec.

* ``smollm2-135m-instruct`` (aliases), ``hf:ORG/NAME``, a local model folder or ``.gguf`` file
  -> TransformersBackend
* ``vllm:...`` -> dreammake.llm.vllm_backend.VLLMBackend (imported lazily)
* ``openai/NAME``, ``PROVIDER/NAME`` for an OpenAI-compatible provider (groq, together_ai,
  deepseek, ...), a bare name litellm lists under the openai provider (``gpt-4o-mini``), or any
  bare name with an ``api_base`` -> OpenAIHTTPBackend
* anything else (``anthropic/...``, ``gemini/...``, ...) -> LiteLLMBackend

``defaults`` may hold options for any backend; each backend gets those its constructor takes.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from .base import Backend
from .models import is_local_spec


def _construct(cls: type, spec: str, defaults: dict[str, Any]) -> Any:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls(spec, **defaults)
    return cls(spec, **{k: v for k, v in defaults.items() if k in params})


def backend_kind(spec: str, api_base: str | None = None) -> str:
    """'transformers', 'vllm', 'openai_http' or 'litellm' for a spec."""
    if spec.startswith("vllm:"):
        return "vllm"
    if is_local_spec(spec):
        return "transformers"
    from .openai_http import split_provider

    provider, _name = split_provider(spec)
    if provider is not None:
        return "openai_http"
    if "/" not in spec:
        if api_base:
            return "openai_http"
        from .costs import provider_of

        if provider_of(spec) == "openai":
            return "openai_http"
    return "litellm"


def make_backend(spec: str, **defaults: Any) -> Backend:
    """Build the backend for ``spec`` (see the module docstring)."""
    kind = backend_kind(spec, defaults.get("api_base"))
    if kind == "transformers":
        from .transformers_backend import TransformersBackend

        return _construct(TransformersBackend, spec, defaults)
    if kind == "vllm":
        mod = importlib.import_module("dreammake.llm.vllm_backend")
        return _construct(mod.VLLMBackend, spec[len("vllm:"):], defaults)
    if kind == "openai_http":
        from .openai_http import OpenAIHTTPBackend

        return _construct(OpenAIHTTPBackend, spec, defaults)
    from .litellm_backend import LiteLLMBackend

    return _construct(LiteLLMBackend, spec, defaults)
