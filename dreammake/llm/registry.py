"""Pick a backend for a model spec.

* ``smollm2-135m-instruct`` (aliases), ``hf:ORG/NAME``, a bare ``ORG/NAME`` whose ORG is no litellm provider
  (a Hub model, downloaded when online), a local model folder or ``.gguf`` file -> TransformersBackend
* ``vllm:...`` -> dreammake.llm.vllm_backend.VLLMBackend (imported lazily)
* ``openai/NAME``, ``PROVIDER/NAME`` for an OpenAI-compatible provider (groq, together_ai,
  deepseek, ...), a bare name litellm lists under the openai provider (``gpt-4o-mini``), or any
  bare name with an ``api_base`` -> OpenAIHTTPBackend
* anything else (``anthropic/...``, ``gemini/...``, ...) -> LiteLLMBackend

Each backend takes the options its constructor names; `check_options` refuses any other (with the closest
valid name) when the Dreamfile calls `llm(...)`, so a typo or an option a backend cannot honour is an error,
never silently dropped. vLLM passes unknown options to its engine, which checks them itself.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from .base import Backend
from .models import is_local_spec

_KIND_NAMES = {"transformers": "the transformers backend", "vllm": "the vLLM backend",
               "openai_http": "the OpenAI-compatible backend", "litellm": "the litellm backend"}


def backend_class(kind: str) -> type:
    """The backend class for a kind from `backend_kind` (its module is cheap to import: no torch, no vLLM)."""
    if kind == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend
    if kind == "vllm":
        return importlib.import_module("dreammake.llm.vllm_backend").VLLMBackend
    if kind == "openai_http":
        from .openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend
    from .litellm_backend import LiteLLMBackend

    return LiteLLMBackend


def accepted_options(cls: type) -> frozenset[str] | None:
    """The options a backend's constructor takes (after the model spec), or None when it takes any."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, the spec
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def check_options(spec: str, options: dict[str, Any], also_valid: frozenset[str] = frozenset(),
                  kind: str | None = None) -> None:
    """Raise TypeError for an option the backend of `spec` (or of `kind`) does not take, naming the closest valid
    one among them and `also_valid` (the generation params)."""
    kind = kind or backend_kind(spec, options.get("api_base"))
    valid = accepted_options(backend_class(kind))
    if valid is None:
        return
    valid = valid | also_valid
    for name in options:
        if name not in valid:
            from dreammake.suggest import did_you_mean

            raise TypeError(f"llm({spec!r}) got an option {_KIND_NAMES[kind]} does not take: {name!r}"
                            f"{did_you_mean(name, valid)}")


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
    check_options(spec, defaults)
    return backend_class(kind)(spec[len("vllm:"):] if kind == "vllm" else spec, **defaults)
