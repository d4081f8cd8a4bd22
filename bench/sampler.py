"""The transformers backend's row sampler: alone on synthetic logits, and inside real generation.

    python bench/sampler.py [--rows 32] [--batch 16] [--max-tokens 24] [--vocab 49152] [--threads 2]
    python bench/compare.py 22c9792 sampler.py          # against the per-row sampler it replaced

Three timings, each the best of `--repeats`:
  sampler alone — the logits processor over `--batch` sampling rows (temperature, top_p, top_k mixed) for
                  `--max-tokens` steps of random logits of `--vocab` tokens (no model: the sampler's own cost);
  sampled       — `TransformersBackend.generate` on SmolLM2 over `--rows` sampling rows;
  greedy        — the same rows greedy (the sampler does nothing: a control that should not move).
The processor is found under either name (`sampling.RowSampler`, or the older `_Sampler`), so the same script
measures both sides of `compare.py`.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STORY = ({"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."},)


def sampler_class():
    """This checkout's row sampler (`RowSampler`, or `_Sampler` before it had its own module)."""
    try:
        from dreammake.llm.sampling import RowSampler
    except ImportError:
        from dreammake.llm.transformers_backend import _Sampler as RowSampler
    return RowSampler


def sampling_requests(n: int, max_tokens: int) -> list:
    """`n` sampling requests with mixed filters and distinct seeds."""
    from dreammake.llm.base import Request

    mixes = ({"temperature": 1.0}, {"temperature": 0.8, "top_p": 0.9}, {"temperature": 1.0, "top_k": 50},
             {"temperature": 0.7, "top_p": 0.95, "top_k": 40})
    return [Request(STORY, {**mixes[i % len(mixes)], "max_tokens": max_tokens}, seed=i) for i in range(n)]


def best(fn, repeats: int) -> float:
    """The fastest of `repeats` calls of `fn`, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def sampler_alone(batch: int, steps: int, vocab: int) -> None:
    """Run the processor as `generate` would: one call per step over the whole batch."""
    import torch

    sampler = sampler_class()(sampling_requests(batch, steps))
    gen = torch.Generator().manual_seed(0)
    scores = [torch.randn(batch, vocab, generator=gen) * 4 for _ in range(4)]
    ids = torch.zeros(batch, 1, dtype=torch.long)
    for step in range(steps):
        sampler(ids, scores[step % len(scores)].clone())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--vocab", type=int, default=49152, help="vocabulary of the synthetic logits (SmolLM2's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    opts = ap.parse_args()

    import torch

    from dreammake.llm.transformers_backend import TransformersBackend

    torch.set_num_threads(opts.threads)
    alone = best(lambda: sampler_alone(opts.batch, opts.max_tokens, opts.vocab), opts.repeats)
    print(f"sampler alone, {opts.batch} rows x {opts.vocab} vocab x {opts.max_tokens} steps: {alone:.3f} s",
          flush=True)

    backend = TransformersBackend(opts.model, batch_size=opts.batch, threads=opts.threads)
    sampled = sampling_requests(opts.rows, opts.max_tokens)
    greedy = [type(r)(r.messages, {"max_tokens": opts.max_tokens}, seed=r.seed) for r in sampled]
    tokens: dict[str, int] = {}

    def generate(name: str, reqs: list) -> None:
        got: dict[int, int] = {}
        backend.generate(reqs, lambda i, resp: got.__setitem__(i, resp.completion_tokens), threading.Event())
        tokens[name] = sum(got.values())

    generate("warm-up", greedy[:2])
    for name, reqs in (("sampled", sampled), ("greedy", greedy)):
        seconds = best(lambda name=name, reqs=reqs: generate(name, reqs), opts.repeats)
        print(f"generate {name}, {opts.rows} rows, batch {opts.batch}: {seconds:.3f} s"
              f" ({tokens[name]} tokens, {tokens[name] / seconds:.1f} tokens/s)", flush=True)
    backend.close()


if __name__ == "__main__":
    main()
