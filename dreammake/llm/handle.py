"""`llm(spec, **defaults)`: a model handle for the Dreamfile.

The handle is cheap to make: nothing is loaded until a rule generates. It splits its
defaults into generation params (enter every cache key) and backend options (how to
reach or load the model); secrets among them never enter identities, keys or logs.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from dreammake.fingerprint import hash_data

GENERATION_KEYS = frozenset({"temperature", "top_p", "top_k", "max_tokens", "stop", "presence_penalty",
                             "frequency_penalty", "repetition_penalty", "response_format", "logit_bias"})
# a word of the name (split at _ or -) is one of these: api_key, HF_TOKEN, aws_secret_access_key — not
# max_tokens, tokenizer or keyword
_SECRET = re.compile(r"(?:^|[_-])(?:api[_-]?)?(?:key|token|secret|password|passwd|authorization|auth)(?:$|[_-])",
                     re.IGNORECASE)
# backend options that change outputs (enter the identity); others (concurrency, rpm...) only change speed
_IDENTITY_OPTIONS = frozenset({"api_base", "system_prompt", "dtype", "quantization", "adapter", "revision",
                               "chat_template"})


def is_secret(name: str) -> bool:
    """Option names that hold credentials (api_key, token, ...)."""
    return bool(_SECRET.search(name))


class LLM:
    """A model named in a Dreamfile. `spec` is a model id, a path, a `target(...)`, or a Backend object."""

    def __init__(self, spec: Any, **defaults: Any):
        self.spec = spec
        self.generation = {k: v for k, v in defaults.items() if k in GENERATION_KEYS}
        self.options = {k: v for k, v in defaults.items() if k not in GENERATION_KEYS}
        if isinstance(spec, (str, os.PathLike)):
            from dreammake.llm.registry import check_options

            # a checkpoint built by the Dreamfile runs on the transformers backend (base + adapter)
            check_options(os.fspath(spec), self.options, also_valid=GENERATION_KEYS,
                          kind="transformers" if self.target is not None else None)
        self._backend: Any = None
        self._identity: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"llm({self.name!r})"

    @property
    def name(self) -> str:
        """A readable model name (for logs and cards)."""
        if isinstance(self.spec, (str, os.PathLike)):
            return os.fspath(self.spec)
        return getattr(self.spec, "name", type(self.spec).__name__)

    @property
    def target(self) -> str | None:
        """The Dreamfile target this model is (a checkpoint trained earlier), if any."""
        from dreammake.refs import TargetRef

        if isinstance(self.spec, TargetRef):
            from dreammake.paths import normalize

            return normalize(self.spec)
        return None

    @property
    def local(self) -> bool:
        """Whether the model runs in this process (transformers, vLLM, a backend object that says `local = True`)
        rather than behind an API; such a model can generate in worker processes, on the GPUs a job was given."""
        if self.target is not None:
            from dreammake.targets import CheckpointFolder

            return CheckpointFolder(self.target).api_model() is None
        if hasattr(self.spec, "generate"):
            return bool(getattr(self.spec, "local", False))
        if self.options.get("api_base"):
            return False
        from dreammake.llm.registry import LOCAL_BACKENDS, backend_kind

        return backend_kind(os.fspath(self.spec)) in LOCAL_BACKENDS

    def identity(self) -> dict[str, Any]:
        """What decides this model's outputs; never credentials. Computed once, without loading weights."""
        if self._identity is None:
            from dreammake.llm.pool import base_identity

            safe_options = {k: base_identity(v) if k == "api_base" else v for k, v in self.options.items()
                            if k in _IDENTITY_OPTIONS and not is_secret(k)}
            if self.target is not None:
                # the checkpoint's content enters the job fingerprint through its input edge
                ident: dict[str, Any] = {"backend": "target", "target": self.target}
            elif hasattr(self.spec, "identity"):
                ident = dict(self.spec.identity())
            else:
                ident = dict(self.backend().identity())
            ident.update({f"option.{k}": v for k, v in sorted(safe_options.items())})
            self._identity = {k: v for k, v in ident.items() if not is_secret(k)}
        return self._identity

    def known_identity(self) -> dict[str, Any] | None:
        """`identity()` when it is known without making the backend (computed already, or cheap: a checkpoint
        target or a backend object as spec), else None. Cards ask this: they must never load a model."""
        if self._identity is None and (self.target is not None or hasattr(self.spec, "identity")):
            return self.identity()
        return self._identity

    def identity_hash(self) -> str:
        """Hash of `identity()`, the model part of fingerprints and cache keys."""
        return hash_data(self.identity())

    def cache_identity_hash(self) -> str:
        """The model part of row-cache keys. For a checkpoint built by this Dreamfile it adds the weights'
        content (known once the folder exists), so a retrained model never reuses the old model's rows."""
        if self.target is None:
            return self.identity_hash()
        from dreammake.llm.models import weights_hash

        return hash_data({**self.identity(), "weights": weights_hash(self.target)})

    def __dreammake_identity__(self) -> dict[str, Any]:
        return self.identity()

    def backend(self) -> Any:
        """The backend object (made once; the model itself loads on first generation)."""
        with self._lock:
            if self._backend is None:
                if hasattr(self.spec, "generate"):
                    self._backend = self.spec
                else:
                    from dreammake.llm.registry import make_backend

                    spec = self.target or os.fspath(self.spec)
                    options = dict(self.options)
                    if self.target is not None:
                        options.update(_adapter_options(spec))
                        spec = options.pop("base", spec)
                    self._backend = make_backend(spec, **options)
            return self._backend

    def close(self) -> None:
        """Free the model (GPU memory, servers, HTTP sessions)."""
        with self._lock:
            if self._backend is not None and self._backend is not self.spec:
                self._backend.close()
            self._backend = None


def _adapter_options(folder: str) -> dict[str, Any]:
    """A LoRA checkpoint folder → its base model and the adapter; a model fine-tuned through an API
    (`rules.train_openai_finetune`) → that API model; a full checkpoint → nothing extra."""
    from dreammake.targets import CheckpointFolder

    checkpoint = CheckpointFolder(folder)
    api = checkpoint.api_model()
    if api is not None:
        return {"base": api["model"], **({"api_base": api["api_base"]} if api["api_base"] else {})}
    if not checkpoint.is_adapter():
        return {}
    return {"base": checkpoint.adapter_base(), "adapter": folder}


def llm(spec: Any, **defaults: Any) -> LLM:
    """A model for prompt rules: `llm("smollm2-135m-instruct")`, `llm("openai/gpt-4o-mini", temperature=0.7)`,
    `llm("openai/my-model", api_base="http://127.0.0.1:8000/v1")`, `llm(target("models/tuned/"))`."""
    return LLM(spec, **defaults)
