"""The generation workloads `check.py` measures, each run in a process of its own (one engine's GPU memory at a
time, nothing left over from the other side):

    python bench/gpu/workloads.py NAME '{"model": FOLDER, "prompts": 512, "max_tokens": 128, "batch": 64}'

prints one line `RESULT {json}` with the figures. Names: `vllm_backend` (dreammake's vLLM backend), `vllm_plain`
(vLLM's own `LLM.generate`), `transformers` (dreammake's transformers backend, then a plain batched
`model.generate` loop, in that order in one process). Every side generates greedily from the same chat prompts
with the same `max_tokens`, after a warm-up on two prompts; the vLLM sides also ignore EOS, so both produce
exactly prompts × max_tokens tokens.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

TOPICS = ("the sea", "a mountain village", "prime numbers", "bread", "the moon", "a lost key", "rivers", "owls")


def prompts(n: int) -> list[str]:
    """`n` distinct chat prompts of similar length."""
    return [f"Request {i}: write a short paragraph about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def requests(texts: list[str], params: dict[str, Any]) -> list:
    """dreammake requests: one user message each."""
    from dreammake.llm.base import Request

    return [Request(({"role": "user", "content": t},), dict(params)) for t in texts]


def backend_tokens_per_s(backend: Any, reqs: list) -> dict[str, float]:
    """Generate `reqs` through a dreammake backend after a warm-up; tokens are the completions' own counts."""
    done: dict[int, int] = {}

    def generate(batch: list) -> float:
        done.clear()
        started = time.perf_counter()
        backend.generate(batch, lambda i, resp: done.__setitem__(i, resp.completion_tokens), threading.Event())
        return time.perf_counter() - started

    generate(reqs[:2])
    seconds = generate(reqs)
    tokens = sum(done.values())
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def vllm_backend(args: dict[str, Any]) -> dict[str, float]:
    """dreammake's vLLM backend (its default engine settings: max_model_len 2048, eager), placed on the GPUs
    given."""
    from dreammake.llm.vllm_backend import VLLMBackend

    backend = VLLMBackend(args["model"])
    if args.get("gpus"):
        backend.place(args["gpus"])
    params = {"temperature": 0.0, "max_tokens": args["max_tokens"], "ignore_eos": True}
    try:
        return backend_tokens_per_s(backend, requests(prompts(args["prompts"]), params))
    finally:
        backend.close()


def vllm_plain(args: dict[str, Any]) -> dict[str, float]:
    """vLLM's own `LLM.generate`, with the engine settings and sampling defaults the backend uses (the model's
    generation_config, then the request's; the CPU build's fixed KV cache)."""
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    from dreammake.llm.vllm_backend import CPU_KV_CACHE_BYTES

    memory = {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES} if current_platform.is_cpu() else {}
    llm = LLM(args["model"], dtype="auto", max_model_len=2048, enforce_eager=True,
              tensor_parallel_size=max(1, args.get("gpus") or 1), **memory)
    tok = llm.get_tokenizer()
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts(args["prompts"])]
    params = SamplingParams(**{**llm.model_config.get_diff_sampling_param(), "temperature": 0.0,
                               "max_tokens": args["max_tokens"], "ignore_eos": True})
    llm.generate(texts[:2], params, use_tqdm=False)
    started = time.perf_counter()
    outputs = llm.generate(texts, params, use_tqdm=False)
    seconds = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def plain_generate(args: dict[str, Any], device: str, dtype: Any) -> dict[str, float]:
    """What a user writes by hand: left-padded batches of `batch` prompts through `model.generate`, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args["model"], padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(args["model"], dtype=dtype).to(device).eval()
    model_eos = model.generation_config.eos_token_id
    eos = {tok.eos_token_id, *(model_eos if isinstance(model_eos, list) else [model_eos])} - {None}
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts(args["prompts"])]

    def generate(batch: list[str]) -> int:
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=args["max_tokens"], do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        tokens = 0
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            ends = [i for i, t in enumerate(row) if t in eos]
            tokens += ends[0] + 1 if ends else len(row)
        return tokens

    generate(texts[:2])
    started = time.perf_counter()
    tokens = sum(generate(texts[i:i + args["batch"]]) for i in range(0, len(texts), args["batch"]))
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def transformers(args: dict[str, Any]) -> dict[str, Any]:
    """dreammake's transformers backend, then the plain loop, on the same device and dtype."""
    import torch

    from dreammake.llm.transformers_backend import TransformersBackend

    backend = TransformersBackend(args["model"], batch_size=args["batch"])
    if args.get("gpus"):
        backend.place(args["gpus"])
    params = {"temperature": 0.0, "max_tokens": args["max_tokens"]}
    ours = backend_tokens_per_s(backend, requests(prompts(args["prompts"]), params))
    device, dtype = backend.device, getattr(torch, backend.dtype_name)
    backend.close()
    return {"backend": ours, "plain": plain_generate(args, device, dtype), "device": device, "dtype": str(dtype)}


WORKLOADS = {"vllm_backend": vllm_backend, "vllm_plain": vllm_plain, "transformers": transformers}


if __name__ == "__main__":
    result = WORKLOADS[sys.argv[1]](json.loads(sys.argv[2]))
    print("RESULT " + json.dumps(result), flush=True)
