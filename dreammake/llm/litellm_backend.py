"""Providers that need litellm's translation (anthropic/..., gemini/..., bedrock/...), with the
same concurrency, rate-limit and retry behaviour as the lean HTTP client (dreammake.llm.limits)."""
from __future__ import annotations

import asyncio
import os
import re
from typing import Any

from .base import LLMError, Request, Response
from .limits import DEFAULT_TIMEOUT_S, AsyncAPIBackend, Retryable, is_retryable_status, parse_retry_after
from .pool import Server
from .util import api_key_from, build_messages, effective_seed, public_url, scrub

_NOT_SENT = {"n", "stream", "seed"}
_CONFIG_ERROR = re.compile(r"missing credentials|api[_ ]key (?:is )?(?:not set|missing|required)",
                           re.IGNORECASE)


def import_litellm():
    """Import litellm quietly and offline (the bundled cost table, no telemetry)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


class LiteLLMBackend(AsyncAPIBackend):
    """Chat completions through ``litellm.acompletion`` (litellm's own retries disabled).

    Params the provider does not support are dropped by litellm (``drop_params``), e.g. ``seed``
    for Anthropic. The endpoint is a pool of one server (its limit adapts unless ``concurrency`` is given)."""

    backend_name = "litellm"

    def __init__(self, model: str, api_base: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None,
                 system_prompt: str | None = None, concurrency: int | None = None,
                 rpm: float | None = None, tpm: float | None = None, max_retries: int = 5,
                 timeout: float = DEFAULT_TIMEOUT_S, backoff_base: float = 0.5, backoff_max: float = 60.0):
        super().__init__(model, servers=[public_url(api_base) or model], concurrency=concurrency, rpm=rpm,
                         tpm=tpm, max_retries=max_retries, timeout=timeout, backoff_base=backoff_base,
                         backoff_max=backoff_max)
        self.api_base = api_base
        self.api_key_env = api_key_env
        self._given_key = api_key  # a secret: never in identity(), errors, logs or the state
        self.system_prompt = system_prompt
        self._litellm = None
        self._key: str | None = None

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "litellm",
            "model": self.model,
            "api_base": public_url(self.api_base),
            "system_prompt": self.system_prompt,
        }

    def endpoint(self) -> str:
        return public_url(self.api_base) or self.model

    def _prepare(self) -> None:
        if self._litellm is None:
            self._litellm = import_litellm()
        self._key = api_key_from(self._given_key, self.api_key_env)

    async def _aclose(self) -> None:
        if self._litellm is None:
            return
        try:  # litellm caches HTTP clients bound to this (closing) loop
            from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

            await close_litellm_async_clients()
        except Exception:  # noqa: BLE001 - best effort; absent in some litellm versions
            return

    def kwargs(self, req: Request) -> dict[str, Any]:
        kw: dict[str, Any] = {k: v for k, v in req.params.items()
                              if k not in _NOT_SENT and v is not None}
        seed = effective_seed(req.seed if req.seed is not None else req.params.get("seed"),
                              req.sample_index)
        if seed is not None:
            kw["seed"] = seed
        kw.update(model=self.model, messages=build_messages(req, self.system_prompt),
                  num_retries=0, max_retries=0, timeout=self.timeout, drop_params=True)
        if self.api_base:
            kw["api_base"] = self.api_base
        if self._key:
            kw["api_key"] = self._key
        elif (self.api_base and self.model.startswith("openai/")
              and not os.environ.get("OPENAI_API_KEY")):
            kw["api_key"] = "no-key"  # a local OpenAI-compatible server: litellm insists on a key
        return kw

    async def _call(self, req: Request, server: Server) -> Response:
        litellm = self._litellm
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            resp = await litellm.acompletion(**self.kwargs(req))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            status = getattr(exc, "status_code", None)
            if not isinstance(status, int):
                status = None
            message = scrub(f"{self.model}: {'HTTP ' + str(status) if status else type(exc).__name__}"
                            f": {getattr(exc, 'message', None) or exc}", [self._key])
            is_api_error = isinstance(exc, (litellm.exceptions.APIError,
                                            litellm.exceptions.APIConnectionError,
                                            litellm.exceptions.Timeout,
                                            litellm.exceptions.RateLimitError,
                                            litellm.exceptions.ServiceUnavailableError,
                                            litellm.exceptions.InternalServerError,
                                            asyncio.TimeoutError, ConnectionError))
            if _CONFIG_ERROR.search(message):  # litellm reports missing keys as HTTP 500
                raise LLMError(message) from None
            if is_retryable_status(status) and (status is not None or is_api_error):
                headers = getattr(getattr(exc, "response", None), "headers", None)
                timed_out = isinstance(exc, (litellm.exceptions.Timeout, asyncio.TimeoutError))
                raise Retryable(message, parse_retry_after(headers), status, timed_out) from None
            raise LLMError(message) from None
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0)
        ct = int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            cost = float(litellm.completion_cost(completion_response=resp) or 0.0)
        except Exception:  # noqa: BLE001 - unknown model: no price
            cost = 0.0
        return Response(text=choice.message.content or "", finish_reason=choice.finish_reason,
                        prompt_tokens=pt, completion_tokens=ct, cost_usd=cost,
                        latency_s=loop.time() - t0)


__all__ = ["LLMError", "LiteLLMBackend", "import_litellm"]
