"""Pick a backend for a model spec: the backend seam.

Backends register by name with a factory (a Backend class, or any callable taking the model spec and the
backend options) and how they claim specs: a prefix (``vllm:NAME`` → the factory gets ``NAME``) and/or a
matcher. A spec goes to the backend of its registered prefix, else to the first matcher that claims it (in
registration order), else to litellm. The built-ins register the same way a plugin does:

* ``smollm2-135m-instruct`` (aliases), ``hf:ORG/NAME``, a bare ``ORG/NAME`` whose ORG is no litellm provider
  (a Hub model, downloaded when online), a local model folder or ``.gguf`` file -> TransformersBackend (matcher)
* ``vllm:...`` -> dreammake.llm.vllm_backend.VLLMBackend (prefix; imported lazily)
* ``openai/NAME``, ``PROVIDER/NAME`` for an OpenAI-compatible provider (groq, together_ai,
  deepseek, ...), a bare name litellm lists under the openai provider (``gpt-4o-mini``), or any
  bare name with an ``api_base`` -> OpenAIHTTPBackend (matcher)
* anything else (``anthropic/...``, ``gemini/...``, ...) -> LiteLLMBackend (the default)

A plugin calls `register_backend("myprovider", factory, prefix="myprovider")`, or declares an entry point
``myprovider = pkg.module:Factory`` in the group ``dreammake.backends`` (its name is its prefix); entry
points are read only for a ``NAME:`` prefix nobody registered in code. A prefix close to a known one
(``vlm:``) is an error with "did you mean".

Each backend takes the options its factory names (or the `options` it registered); `check_options` refuses
any other (with the closest valid name) when the Dreamfile calls `llm(...)`, so a typo or an option a backend
cannot honour is an error, never silently dropped. vLLM passes unknown options to its engine, which checks
them itself.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dreammake.plugins import Registry

from .base import Backend

Matcher = Callable[[str, "str | None"], bool]  # (spec, api_base) -> whether the backend claims the spec
DEFAULT = "litellm"


@dataclass(frozen=True)
class BackendInfo:
    """How a registered backend claims specs and which options it takes."""

    name: str
    prefix: str | None = None
    matches: Matcher | None = None
    options: frozenset[str] | None = None  # None: the factory's own parameters (after the spec)
    description: str = ""


FACTORIES: Registry[Callable[..., Backend]] = Registry("dreammake.backends", "backend")
_INFO: dict[str, BackendInfo] = {}
_PREFIXES: dict[str, str] = {}  # prefix -> backend name


def register_backend(name: str, factory: Callable[..., Backend] | str, *, prefix: str | None = None,
                     matches: Matcher | None = None, options: Iterable[str] | None = None,
                     description: str | None = None) -> None:
    """Add a backend: `factory(model_spec, **options)` (or a ``"module:attribute"`` reference to it) builds it.

    `prefix` claims specs ``PREFIX:MODEL`` (the factory gets ``MODEL``); `matches(spec, api_base)` claims others.
    `options` are the option names it takes (default: the factory's keyword parameters; `**kwargs` takes any).
    `description` names it in errors (default "the NAME backend")."""
    if prefix is not None and prefix in _PREFIXES and _PREFIXES[prefix] != name:
        raise ValueError(f"the backend prefix {prefix!r} is already registered by {_PREFIXES[prefix]!r}")
    FACTORIES.register(name, factory)
    _INFO[name] = BackendInfo(name, prefix, matches, frozenset(options) if options is not None else None,
                              description or f"the {name} backend")
    if prefix is not None:
        _PREFIXES[prefix] = name


def info(name: str) -> BackendInfo:
    """What a backend registered; a backend found through an entry point claims its name as prefix."""
    return _INFO.get(name) or BackendInfo(name, prefix=name, description=f"the {name} backend")


def accepted_options(factory: Callable[..., Any]) -> frozenset[str] | None:
    """The options a backend factory takes (after the model spec), or None when it takes any."""
    params = list(inspect.signature(factory).parameters.values())[1:]  # the spec (bound methods drop self)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def check_options(spec: str, options: dict[str, Any], also_valid: frozenset[str] = frozenset(),
                  kind: str | None = None) -> None:
    """Raise TypeError for an option the backend of `spec` (or of `kind`) does not take, naming the closest valid
    one among them and `also_valid` (the generation params)."""
    kind = kind or backend_kind(spec, options.get("api_base"))
    backend = info(kind)
    valid = backend.options if backend.options is not None else accepted_options(FACTORIES.get(kind))
    if valid is None:
        return
    valid = valid | also_valid
    for name in options:
        if name not in valid:
            from dreammake.suggest import did_you_mean

            raise TypeError(f"llm({spec!r}) got an option {backend.description} does not take: {name!r}"
                            f"{did_you_mean(name, valid)}")


def route(spec: str, api_base: str | None = None) -> tuple[str, str]:
    """(backend name, the model spec its factory gets) for a spec; ValueError for a mistyped prefix."""
    head, colon, rest = spec.partition(":")
    if colon and head in _PREFIXES:
        return _PREFIXES[head], rest
    for backend in _INFO.values():
        if backend.matches is not None and backend.matches(spec, api_base):
            return backend.name, spec
    if colon and head.isidentifier():
        if head in FACTORIES and info(head).prefix == head:  # an installed plugin's entry point
            return head, rest
        prefixes = sorted({*_PREFIXES, *(n for n in FACTORIES.names() if n not in _INFO)})
        from dreammake.suggest import closest

        match = closest(head, prefixes)
        if match is not None:
            raise ValueError(f"llm({spec!r}): no backend has the prefix {head + ':'!r} (did you mean {match}:?)")
    return DEFAULT, spec


LOCAL_BACKENDS = frozenset({"transformers", "vllm"})  # backends that load the model into this process


def backend_kind(spec: str, api_base: str | None = None) -> str:
    """The name of the backend for a spec: 'transformers', 'vllm', 'openai_http', 'litellm' or a plugin's."""
    return route(spec, api_base)[0]


def make_backend(spec: str, **defaults: Any) -> Backend:
    """Build the backend for ``spec`` (see the module docstring)."""
    kind, model = route(spec, defaults.get("api_base"))
    check_options(spec, defaults, kind=kind)
    return FACTORIES.get(kind)(model, **defaults)


def _is_local(spec: str, api_base: str | None) -> bool:
    from .models import is_local_spec

    return is_local_spec(spec)


def _is_openai_compatible(spec: str, api_base: str | None) -> bool:
    from .openai_http import split_provider

    if split_provider(spec)[0] is not None:
        return True
    if "/" in spec:
        return False
    if api_base:
        return True
    from .costs import provider_of

    return provider_of(spec) == "openai"


# the built-ins, in the order their matchers are tried (litellm takes what no other claims)
register_backend("vllm", "dreammake.llm.vllm_backend:VLLMBackend", prefix="vllm", description="the vLLM backend")
register_backend("transformers", "dreammake.llm.transformers_backend:TransformersBackend", matches=_is_local,
                 description="the transformers backend")
register_backend("openai_http", "dreammake.llm.openai_http:OpenAIHTTPBackend", matches=_is_openai_compatible,
                 description="the OpenAI-compatible backend")
register_backend(DEFAULT, "dreammake.llm.litellm_backend:LiteLLMBackend", description="the litellm backend")
