"""Local generation with Hugging Face transformers (GGUF aliases, model folders, hf: ids).

Batching: requests are sorted by prompt length and generated in left-padded batches. All rows of
a batch run one ``model.generate`` call in greedy mode; rows that sample do so inside a logits
processor (``sampling.RowSampler``) that draws every sampling row's token in one batched call on the
model's device, each row from its own counter-based stream (seeded from the request's seed and sample
index), so a sampled request's output does not depend on which other requests share its batch. Per-row
``max_tokens`` and ``stop`` strings are enforced by a per-row stopping criterion.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import LLMError, OnResult, Request, Response
from .chat_template import read_chat_template
from .models import (
    checkpoint_for,
    file_hash,
    quiet_transformers,
    resolve,
    spec_display_name,
    text_hash,
    weights_hash,
)
from .sampling import RowSampler
from .util import DEFAULT_MAX_TOKENS, apply_stop, build_messages, stop_list

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class TransformersBackend:
    """Batched local generation with a transformers causal LM (lazy load on first use)."""

    def __init__(self, model_spec: str, system_prompt: str | None = None, dtype: str | None = None,
                 device: str | None = None, batch_size: int = 16, adapter: str | None = None,
                 threads: int | None = None):
        self.model_spec = model_spec
        self.system_prompt = system_prompt
        self.batch_size = max(1, int(batch_size))
        self.adapter = adapter
        self.threads = threads
        self._want_dtype = dtype
        self._want_device = device
        self._gpus = 0  # set by place(): the GPUs this process's shard owns
        self._model = None
        self._tok = None
        self._ckpt: Path | None = None
        self._lock = threading.Lock()
        self._identity: dict[str, Any] | None = None

    # ------------------------------------------------------------------ setup
    @property
    def device(self) -> str:
        """The device the model runs on: the user's choice, else the GPU when placed on one or one is found."""
        if self._want_device and self._want_device != "auto":
            return self._want_device
        if self._gpus > 0:
            return "cuda"
        from dreammake.gpus import detect_gpus  # no torch import (it costs seconds at plan time)

        return "cuda" if detect_gpus() > 0 else "cpu"

    def place(self, gpus: int) -> None:
        """Load onto the `gpus` GPUs this process owns (a generation worker calls it before the first generate,
        CUDA_VISIBLE_DEVICES already narrowed to them): 0 leaves the device as it is, 1 puts the model on the
        GPU, more spreads its layers over them (accelerate's `device_map="auto"`). A device given by the user
        wins. Placement changes where the model runs, not what it is: it is no part of `identity()`. A model
        already loaded keeps its place until `close()`."""
        self._gpus = max(0, int(gpus))

    def _placement(self) -> tuple[dict[str, Any], str | None]:
        """`from_pretrained`'s placement keywords and the device to move the loaded model to (None: already
        placed by accelerate)."""
        chosen = self._want_device and self._want_device != "auto"
        if self._gpus > 1 and not chosen:
            return {"device_map": "auto"}, None
        return {}, self.device

    @property
    def dtype_name(self) -> str:
        if self._want_dtype and self._want_dtype != "auto":
            try:
                return _DTYPES[self._want_dtype.lower()]
            except KeyError:
                raise LLMError(f"{self.model_spec}: unknown dtype {self._want_dtype!r}") from None
        if self.device.startswith("cuda"):
            import torch

            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"

    def _checkpoint(self) -> Path:
        if self._ckpt is None:
            self._ckpt = checkpoint_for(self.model_spec)
        return self._ckpt

    def _tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self._checkpoint())
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._tok = tok
        return self._tok

    def _load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            import torch
            from transformers import AutoModelForCausalLM

            quiet_transformers()

            if self.threads:
                torch.set_num_threads(int(self.threads))
            tok = self._tokenizer()
            dtype = getattr(torch, self.dtype_name)
            placement, device = self._placement()
            model = AutoModelForCausalLM.from_pretrained(self._checkpoint(), dtype=dtype, **placement)
            if self.adapter:
                if not Path(self.adapter).is_dir():
                    raise LLMError(f"{self.model_spec}: adapter {self.adapter} is not a folder")
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.adapter)
            if device is not None:
                model.to(device)
            model.eval()
            if model.generation_config.pad_token_id is None:
                model.generation_config.pad_token_id = tok.pad_token_id
            self._model = model
            return model

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            src = resolve(self.model_spec)
            tmpl = read_chat_template(self._checkpoint())  # read from files: no transformers import at plan time
            self._identity = {
                "backend": "transformers",
                "model": spec_display_name(self.model_spec),
                "weights_hash": weights_hash(self._checkpoint()),
                "chat_template_hash": text_hash(tmpl),
                "system_prompt": self.system_prompt,
                "dtype": self.dtype_name,
                "quantization": (f"gguf:{src.name}:{file_hash(src)[:16]} dequantized"
                                 if src.suffix == ".gguf" else None),
                "adapter_hash": weights_hash(self.adapter) if self.adapter else None,
            }
        return dict(self._identity)

    # ------------------------------------------------------------------ generation
    def _prompt_ids(self, req: Request) -> list[int]:
        tok = self._tokenizer()
        msgs = build_messages(req, self.system_prompt)
        if tok.chat_template:
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant:"
        return tok(text, add_special_tokens=False)["input_ids"]

    def generate(self, requests: list[Request], on_result: OnResult, cancel: threading.Event) -> None:
        if not requests:
            return
        self._load()
        prompts = [self._prompt_ids(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        pending = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        reported: set[int] = set()

        def report(i: int, resp: Response) -> None:
            reported.add(i)
            on_result(i, resp)

        while pending:
            if cancel.is_set():
                return
            chunk = [i for i in pending.pop(0) if i not in reported]  # rows done before an out-of-memory retry
            if not chunk:
                continue
            try:
                finished = self._run_batch([requests[i] for i in chunk], [prompts[i] for i in chunk], cancel,
                                           lambda row, resp, chunk=chunk: report(chunk[row], resp))
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                self._free_memory()
                if len(chunk) == 1:
                    raise LLMError(f"{self.model_spec}: out of memory even at batch size 1") from None
                half = len(chunk) // 2
                self.batch_size = max(1, half)
                pending[:0] = [chunk[:half], chunk[half:]]
                continue
            if finished is None:  # cancelled mid-batch
                return

    def close(self) -> None:
        with self._lock:
            self._model = None
        self._free_memory()

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _run_batch(self, reqs: list[Request], prompts: list[list[int]], cancel: threading.Event,
                   on_row: Callable[[int, Response], None]) -> bool | None:
        """Generate a batch; each row's Response goes to `on_row` the moment the row finishes (so progress and
        the spool move row by row, not batch by batch). None when cancelled."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        model, tok = self._model, self._tok
        t0 = time.perf_counter()
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = 1
        max_tokens = [int(r.params.get("max_tokens") or DEFAULT_MAX_TOKENS) for r in reqs]
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            eos_ids.add(tok.eos_token_id)
        def finish(row: int, gen: list[int]) -> None:
            text, stopped = apply_stop(tok.decode(gen, skip_special_tokens=True), control.stops[row])
            reason = "stop" if stopped or (gen and gen[-1] in eos_ids) else "length"
            on_row(row, Response(text=text, finish_reason=reason, prompt_tokens=len(prompts[row]),
                                 completion_tokens=len(gen), latency_s=time.perf_counter() - t0))

        control = _RowControl(reqs, width, max_tokens, eos_ids, tok, cancel, finish)
        gen_cfg = GenerationConfig(max_new_tokens=max(max_tokens), do_sample=False,
                                   pad_token_id=pad, eos_token_id=sorted(eos_ids) or None)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                generation_config=gen_cfg,
                logits_processor=LogitsProcessorList([control.sampler]),
                stopping_criteria=StoppingCriteriaList([control]),
            )
        if cancel.is_set():
            return None
        out = out[:, width:].tolist()
        for row in range(len(reqs)):
            if control.done_len[row] is None:  # ended with the batch (the longest row), not reported yet
                finish(row, out[row][:min(len(out[row]), max_tokens[row])])
        return True


class _RowControl:
    """Stopping criterion with per-row max_tokens, EOS and stop strings (records where each row
    finished and hands its tokens to `on_done`) plus cancellation; owns the row sampler."""

    def __init__(self, reqs, width, max_tokens, eos_ids, tok, cancel, on_done):
        import torch

        self.width = width
        self.max_tokens = max_tokens
        self.eos_ids = eos_ids
        self.tok = tok
        self.cancel = cancel
        self.stops = [stop_list(r.params) for r in reqs]
        self.tail = [max((len(s) for s in st), default=0) + 8 for st in self.stops]
        self.done_len: list[int | None] = [None] * len(reqs)
        self.done = torch.zeros(len(reqs), dtype=torch.bool)
        self.sampler = RowSampler(reqs)
        self.on_done = on_done

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        n = input_ids.shape[1] - self.width
        if self.cancel.is_set():
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        last = input_ids[:, -1].tolist()
        for row in range(len(self.done_len)):
            if self.done_len[row] is not None:
                continue
            finished = last[row] in self.eos_ids or n >= self.max_tokens[row]
            if not finished and self.stops[row]:
                tail_ids = input_ids[row, max(self.width, input_ids.shape[1] - self.tail[row]):]
                text = self.tok.decode(tail_ids, skip_special_tokens=True)
                finished = any(s in text for s in self.stops[row])
            if finished:
                self.done_len[row] = n
                self.done[row] = True
                self.on_done(row, input_ids[row, self.width:self.width + n].tolist())
        return self.done.to(input_ids.device).clone()
