"""Row sampling that stays on the model's device: one batched draw per generated token for every sampling row.

Each sampling row draws from its own counter-based stream: the uniform number it uses at step t is a hash of
(the row's seed, t), computed on the device for all rows at once. A row's tokens therefore depend on its own
seed, prompt and params only — never on which rows share its batch or on the batch size, which sharded
generation relies on (rows split over N workers give the same output) — and no per-row host transfer happens
while generating. A draw is inverse-CDF sampling over the row's temperature-scaled, top-k / top-p filtered
distribution: the token whose cumulative probability first exceeds u × total.
"""

from __future__ import annotations

import secrets
from typing import Any

from .base import Request
from .util import effective_seed

MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mul32(x: Any, c: int) -> Any:
    """(x * c) mod 2**32 for 32-bit x (a Python int or an int64 tensor), without overflowing 64 bits."""
    hi, lo = c >> 16, c & 0xFFFF
    return ((((x * hi) & 0xFFFF) << 16) + x * lo) & MASK32


def mix32(x: Any) -> Any:
    """MurmurHash3's 32-bit finaliser (a bijection on 32-bit values) on a Python int or an int64 tensor."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def row_keys(seed: int) -> tuple[int, int]:
    """Two 32-bit keys for a row's stream, from its (up to 64-bit) seed."""
    seed &= (1 << 64) - 1
    k1 = mix32((seed & MASK32) ^ mix32((seed >> 32) ^ _GOLDEN))
    return k1, mix32(k1 ^ _GOLDEN)


def step_uniforms(k1: Any, k2: Any, step: int) -> Any:
    """The uniform numbers in [0, 1) the rows with keys (k1, k2) draw at `step` (float64, 32 random bits)."""
    s = mix32((step * _GOLDEN + 1) & MASK32)
    h = mix32(mix32(k1 ^ s) ^ k2)
    return h.double() * (1.0 / (1 << 32))


class RowSampler:
    """Logits processor: leaves greedy rows alone; forces each sampling row's next token, drawn as above.

    Temperature scales the logits, then `top_k` keeps the k largest (ties at the k-th value kept), then `top_p`
    keeps the smallest set of most probable tokens whose probability reaches p. Rows without a seed get a
    random one.
    """

    def __init__(self, reqs: list[Request]):
        self.rows: list[int] = []
        self.temps: list[float] = []
        self.top_k: list[int] = []  # 0: none
        self.top_p: list[float] = []  # 1.0: none
        self.keys: list[tuple[int, int]] = []
        for row, r in enumerate(reqs):
            temp = r.params.get("temperature")
            if not temp:  # None or 0 -> greedy
                continue
            seed = effective_seed(r.seed, r.sample_index)
            top_p, top_k = r.params.get("top_p"), r.params.get("top_k")
            self.rows.append(row)
            self.temps.append(float(temp))
            self.top_k.append(int(top_k) if top_k else 0)
            self.top_p.append(1.0 if top_p is None else min(1.0, float(top_p)))
            self.keys.append(row_keys(secrets.randbits(31) if seed is None else int(seed)))
        self.step = 0
        self._dev: dict[str, Any] | None = None

    def _tensors(self, device: Any, vocab: int) -> dict[str, Any]:
        """The rows' settings as tensors on `device`, made at the first step (the only host-to-device copies)."""
        import torch

        if self._dev is None:
            ks = [k if 0 < k < vocab else 0 for k in self.top_k]
            p_rows = [i for i, p in enumerate(self.top_p) if p < 1.0]
            self._dev = {
                "rows": torch.tensor(self.rows, device=device),
                "temps": torch.tensor(self.temps, device=device).unsqueeze(1),
                "k1": torch.tensor([k for k, _ in self.keys], dtype=torch.int64, device=device),
                "k2": torch.tensor([k for _, k in self.keys], dtype=torch.int64, device=device),
                "k_max": max(ks),
                "k_index": torch.tensor([max(k, 1) - 1 for k in ks], device=device).unsqueeze(1),
                "has_k": torch.tensor([k > 0 for k in ks], device=device).unsqueeze(1),
                "p_rows": torch.tensor(p_rows, device=device) if p_rows else None,
                "p": torch.tensor([self.top_p[i] for i in p_rows], device=device).unsqueeze(1),
            }
        return self._dev

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if not self.rows:
            return scores
        t = self._tensors(scores.device, scores.shape[-1])
        tokens = draw(scores.index_select(0, t["rows"]).float() / t["temps"], t,
                      step_uniforms(t["k1"], t["k2"], self.step))
        self.step += 1
        scores.index_fill_(0, t["rows"], float("-inf"))
        scores[t["rows"], tokens] = 0.0
        return scores


def draw(logits: Any, t: dict[str, Any], u: Any) -> Any:
    """One token per row of `logits` ([rows, vocab], float32, temperature applied) for the uniforms `u`."""
    import torch

    if t["k_max"]:
        kth = torch.topk(logits, t["k_max"], dim=-1).values.gather(1, t["k_index"])
        kth = torch.where(t["has_k"], kth, torch.full_like(kth, float("-inf")))
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if t["p_rows"] is not None:
        sub = probs.index_select(0, t["p_rows"])
        sorted_p, idx = torch.sort(sub, dim=-1, descending=True, stable=True)
        drop = torch.cumsum(sorted_p, dim=-1) - sorted_p > t["p"]  # keep the smallest prefix reaching top_p
        probs = probs.index_copy(0, t["p_rows"], sub.scatter(1, idx, sorted_p.masked_fill(drop, 0.0)))
    cdf = torch.cumsum(probs.double(), dim=-1)
    total = cdf[:, -1:]
    target = torch.minimum(u.unsqueeze(1) * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).squeeze(1)
