"""The on-device row sampler on synthetic logits: per-row streams, batch invariance, the filters' semantics."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from dreammake.llm.base import Request  # noqa: E402
from dreammake.llm.sampling import RowSampler, mix32, row_keys, step_uniforms  # noqa: E402

VOCAB = 50


def req(seed: int | None, **params) -> Request:
    return Request(messages=({"role": "user", "content": "x"},), params=params, seed=seed)


def logits_for(rows: int, step: int) -> torch.Tensor:
    """Deterministic logits: the same for a row index whatever the batch."""
    gen = torch.Generator().manual_seed(1000 + step)
    return torch.randn(rows, VOCAB, generator=gen) * 3


def tokens(reqs: list[Request], steps: int, base: torch.Tensor | None = None) -> list[list[int]]:
    """The token each row is forced to at each step, with one fixed logits row for every request."""
    sampler = RowSampler(reqs)
    out: list[list[int]] = [[] for _ in reqs]
    for step in range(steps):
        scores = (base if base is not None else logits_for(1, step)).expand(len(reqs), VOCAB).clone()
        forced = sampler(None, scores).argmax(-1).tolist()
        for row, tok in enumerate(forced):
            out[row].append(tok)
    return out


def test_mix32_agrees_on_ints_and_tensors():
    values = [0, 1, 12345, 0xFFFFFFFF, 0x80000000]
    assert mix32(torch.tensor(values, dtype=torch.int64)).tolist() == [mix32(v) for v in values]
    assert len({mix32(v) for v in range(10_000)}) == 10_000  # a bijection
    k1, k2 = torch.tensor([row_keys(7)[0]]), torch.tensor([row_keys(7)[1]])
    u = [float(step_uniforms(k1, k2, s)) for s in range(1000)]
    assert all(0.0 <= x < 1.0 for x in u) and abs(sum(u) / len(u) - 0.5) < 0.05


def test_row_tokens_do_not_depend_on_batch_companions_or_size():
    p = {"temperature": 0.9, "top_p": 0.9, "top_k": 20}
    alone = tokens([req(3, **p)], 30)[0]
    crowd = tokens([req(1, temperature=1.3), req(None, temperature=1.0), req(3, **p), req(9, **p), req(4)], 30)
    assert crowd[2] == alone
    assert crowd[3] != alone  # another seed, another stream
    big = tokens([req(s, **p) for s in range(64)], 30)
    assert big[3] == alone


def test_greedy_rows_are_left_alone():
    scores = logits_for(3, 0)
    out = RowSampler([req(1), req(2, temperature=0), req(3, temperature=1.0)])(None, scores.clone())
    assert torch.equal(out[:2], scores[:2])
    assert out[2].isinf().sum() == VOCAB - 1


def frequencies(logits: list[float], n: int, **params) -> list[float]:
    base = torch.tensor([logits])
    sampler = RowSampler([req(seed, **params) for seed in range(n)])
    forced = sampler(None, base.expand(n, len(logits)).clone()).argmax(-1)
    return (torch.bincount(forced, minlength=len(logits)).double() / n).tolist()


def test_temperature_top_k_top_p_match_their_distributions():
    logits = [math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]
    assert frequencies(logits, 20_000, temperature=1.0) == pytest.approx([0.5, 0.3, 0.15, 0.05], abs=0.015)
    assert frequencies(logits, 20_000, temperature=1.0, top_k=2) == pytest.approx([0.625, 0.375, 0, 0], abs=0.015)
    # top_p 0.7 keeps 0.5 and 0.3 (the smallest prefix reaching 0.7)
    assert frequencies(logits, 20_000, temperature=1.0, top_p=0.7) == pytest.approx([0.625, 0.375, 0, 0], abs=0.015)
    hot = frequencies(logits, 20_000, temperature=100.0)
    assert all(abs(f - 0.25) < 0.02 for f in hot)
    assert frequencies(logits, 2_000, temperature=0.01) == [1.0, 0.0, 0.0, 0.0]


def test_masked_tokens_are_never_drawn():
    logits = [0.0, float("-inf"), 0.0, float("-inf")]
    freq = frequencies(logits, 5_000, temperature=1.0)
    assert freq[1] == freq[3] == 0.0 and freq[0] + freq[2] == 1.0
