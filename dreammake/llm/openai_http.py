"""A lean aiohttp client for OpenAI-compatible ``/v1/chat/completions`` endpoints."""
from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from .base import LLMError, Request, Response
from .costs import token_cost
from .limits import DEFAULT_TIMEOUT_S, AsyncAPIBackend, Retryable, is_retryable_status, parse_retry_after
from .pool import Server, base_identity
from .util import api_key_from, build_messages, effective_seed, public_url, scrub

# Providers that speak the OpenAI chat API: default api_base and API-key env var.
OPENAI_COMPATIBLE: dict[str, tuple[str | None, str | None]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together_ai": ("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "perplexity": ("https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    "hosted_vllm": (None, None),  # needs api_base
    "lm_studio": ("http://localhost:1234/v1", None),
    "openai_compatible": (None, None),
}

_NOT_SENT = {"n", "stream", "seed"}  # one choice per Request; seed is derived per sample
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def split_provider(spec: str) -> tuple[str | None, str]:
    """``openai/gpt-4o`` -> ("openai", "gpt-4o"); a bare name -> (None, name)."""
    head, sep, rest = spec.partition("/")
    if sep and head in OPENAI_COMPATIBLE:
        return head, rest
    return None, spec


class OpenAIHTTPBackend(AsyncAPIBackend):
    """Chat completions over HTTP with concurrency/rate limits and bounded retries.

    ``n`` in params is not sent (each sample is its own Request); ``seed`` is sent as the
    request's seed mixed with its sample index (see util.effective_seed). ``timeout`` is how long
    one request waits for its answer (raise it for slow local servers). ``api_base`` may be a list:
    a pool of servers of one model (see `dreammake.llm.pool`). ``concurrency`` fixes how many requests
    are in flight at once (over the whole pool); without it each server's limit adapts (see
    `dreammake.llm.adaptive`). ``batch=True`` sends a rule's misses as one
    batch job instead (polled every ``batch_poll_s`` seconds; see `dreammake.llm.batch`).
    """

    backend_name = "openai_http"

    def __init__(self, model: str, api_base: str | list[str] | None = None, api_key: str | None = None,
                 api_key_env: str | None = "OPENAI_API_KEY", system_prompt: str | None = None,
                 concurrency: int | None = None, rpm: float | None = None, tpm: float | None = None,
                 max_retries: int = 5, timeout: float = DEFAULT_TIMEOUT_S, backoff_base: float = 0.5,
                 backoff_max: float = 60.0, extra_headers: dict[str, str] | None = None, batch: bool = False,
                 batch_poll_s: float = 30.0):
        self.provider, self.name = split_provider(model)
        default_base, default_env = OPENAI_COMPATIBLE.get(self.provider or "openai", (None, None))
        bases = [b.rstrip("/") for b in api_base] if isinstance(api_base, (list, tuple)) else \
            [(api_base or default_base or "").rstrip("/")]
        if not all(bases):
            raise LLMError(f"{model}: api_base is required for this provider")
        super().__init__(model, servers=[b.removesuffix("/chat/completions") for b in bases],
                         concurrency=concurrency, rpm=rpm, tpm=tpm, max_retries=max_retries, timeout=timeout,
                         backoff_base=backoff_base, backoff_max=backoff_max)
        self.api_base: str | list[str] = bases[0] if len(bases) == 1 else bases
        if api_key_env == "OPENAI_API_KEY" and self.provider not in (None, "openai"):
            api_key_env = default_env  # the provider's own variable unless one was named
        self.api_key_env = api_key_env
        self._given_key = api_key  # a secret: never in identity(), errors, logs or the state
        self.system_prompt = system_prompt
        self.extra_headers = dict(extra_headers or {})
        self.batch, self.batch_poll_s = batch, batch_poll_s  # the provider's batch API: half price, hours
        if batch and len(bases) > 1:
            raise LLMError(f"{model}: batch=True sends one batch job to one api_base, not to a pool of servers")
        # a local server is free whatever its model name
        self._price = any((urlsplit(b).hostname or "") not in _LOCAL_HOSTS for b in bases)
        self._session = None
        self._key: str | None = None

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "openai_http",
            "model": self.name,
            "provider": self.provider or "openai",
            "api_base": base_identity(self.api_base),
            "system_prompt": self.system_prompt,
        }

    def endpoint(self) -> str:
        return self.pool.describe("chat/completions")

    # ------------------------------------------------------------------ session
    async def _ensure_session(self):
        if self._session is None or self._session.closed:
            import aiohttp

            self._key = api_key_from(self._given_key, self.api_key_env)
            headers = {"Content-Type": "application/json", **self.extra_headers}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool.capacity, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, 30.0)),
                headers=headers,
            )
        return self._session

    async def _aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ one call
    def payload(self, req: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name, "messages": build_messages(req, self.system_prompt)}
        for k, v in req.params.items():
            if k not in _NOT_SENT and v is not None:
                body[k] = v
        seed = effective_seed(req.seed if req.seed is not None else req.params.get("seed"),
                              req.sample_index)
        if seed is not None:
            body["seed"] = seed
        return body

    def _error(self, status: int, text: str) -> str:
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        msg = data
        if isinstance(data, dict):  # {"error": {"message": ...}}, {"error": "..."}, {"detail": ...}
            err = data.get("error") or data.get("detail") or data
            msg = err.get("message", err) if isinstance(err, dict) else err
        return scrub(f"{self.model}: HTTP {status} from {self.endpoint()}: {msg}", [self._key])

    async def _post(self, server: Server, path: str, body: dict[str, Any]) -> tuple[str, int]:
        """POST a JSON body to `path` (e.g. `chat/completions`) of `server`; the response text and status
        (429/5xx/timeouts raise Retryable, other errors LLMError)."""
        import aiohttp

        session = await self._ensure_session()
        where = public_url(f"{server.url}/{path}")
        try:
            async with session.post(f"{server.url}/{path}", data=json.dumps(body)) as resp:
                text = await resp.text()
                status = resp.status
                if status != 200:
                    message = self._error(status, text)
                    if is_retryable_status(status):
                        raise Retryable(message, parse_retry_after(resp.headers), status)
                    raise LLMError(message)
        except asyncio.TimeoutError:
            raise Retryable(f"{self.model}: no answer from {where} within {self.timeout:g} s"
                            " (raise the model's timeout= for a slow server)", timed_out=True) from None
        except aiohttp.ClientError as exc:
            raise Retryable(scrub(f"{self.model}: {type(exc).__name__} from {where}: {exc}",
                                  [self._key])) from None
        return text, status

    def malformed(self, text: str, status: int) -> Retryable:
        """The error for a response body that is not what the API promises."""
        return Retryable(f"{self.model}: malformed response: {scrub(text[:120], [self._key])}", status=status)

    async def _call(self, req: Request, server: Server) -> Response:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        text, status = await self._post(server, "chat/completions", self.payload(req))
        try:
            return self.response_of(json.loads(text), loop.time() - t0)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise self.malformed(text, status) from None

    def response_of(self, data: dict[str, Any], latency_s: float, batch: bool = False) -> Response:
        """A chat completion's JSON as a Response, priced (at the batch price for `batch`) unless the server is
        local. Raises KeyError/IndexError/TypeError when it is not a chat completion."""
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        pt = int(usage.get("prompt_tokens") or 0)
        ct = int(usage.get("completion_tokens") or 0)
        return Response(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=pt,
            completion_tokens=ct,
            cost_usd=token_cost(self.provider or "openai", self.name, pt, ct, batch) if self._price else 0.0,
            latency_s=latency_s,
            served_model=data.get("model"),
            system_fingerprint=data.get("system_fingerprint"),
        )

    def generate(self, requests: list[Request], on_result: Any, cancel: Any) -> None:
        """Each request on its own call, or (`batch=True`) all of them as one batch job (`dreammake.llm.batch`)."""
        if self.batch:
            from .batch import run_batch

            run_batch(self, requests, on_result, cancel)
        else:
            super().generate(requests, on_result, cancel)
