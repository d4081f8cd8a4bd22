"""A real OpenAI-compatible server (`transformers serve`) through both API backends, and the
backend registry."""
from __future__ import annotations

import threading

import pytest

from dreammake.llm.base import Request
from dreammake.llm.litellm_backend import LiteLLMBackend
from dreammake.llm.openai_http import OpenAIHTTPBackend
from dreammake.llm.registry import backend_kind, make_backend
from dreammake.llm.transformers_backend import TransformersBackend

QUESTIONS = ["What is the capital of France? Answer in one short sentence.",
             "What is 2+2? Answer with a number."]


def run(backend, requests):
    got = {}
    backend.generate(requests, lambda i, r: got.__setitem__(i, r), threading.Event())
    assert sorted(got) == list(range(len(requests)))
    return [got[i] for i in range(len(requests))]


def reqs():
    return [Request(({"role": "user", "content": q},), {"max_tokens": 12, "temperature": 0})
            for q in QUESTIONS]


def check(out):
    assert "Paris" in out[0].text
    assert "4" in out[1].text
    for r in out:
        assert r.prompt_tokens > 10 and 0 < r.completion_tokens <= 12
        assert r.finish_reason in ("stop", "length")


def test_openai_http_against_transformers_serve(transformers_server):
    api_base, model_id = transformers_server
    b = make_backend(f"openai/{model_id}", api_base=api_base, api_key_env=None, concurrency=2)
    assert isinstance(b, OpenAIHTTPBackend)
    try:
        check(run(b, reqs()))
        assert b.identity()["api_base"] == api_base
    finally:
        b.close()


def test_litellm_against_transformers_serve(transformers_server):
    api_base, model_id = transformers_server
    b = LiteLLMBackend(f"openai/{model_id}", api_base=api_base, api_key_env=None, concurrency=2)
    try:
        out = run(b, reqs())
        check(out)
        assert all(r.cost_usd == 0.0 for r in out)
    finally:
        b.close()


@pytest.mark.parametrize(("spec", "kind"), [
    ("smollm2-135m-instruct", "transformers"),
    ("hf:HuggingFaceTB/SmolLM2-135M-Instruct", "transformers"),
    ("/some/where/model.gguf", "transformers"),
    ("vllm:Qwen/Qwen2.5-0.5B-Instruct", "vllm"),
    ("openai/gpt-4o-mini", "openai_http"),
    ("groq/llama-3.1-8b-instant", "openai_http"),
    ("gpt-4o-mini", "openai_http"),
    ("anthropic/claude-3-5-haiku-latest", "litellm"),
    ("gemini/gemini-1.5-flash", "litellm"),
])
def test_backend_kind(spec, kind):
    assert backend_kind(spec) == kind


def test_make_backend_takes_each_backends_options_and_refuses_others(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-key-123456")
    t = make_backend("smollm2-135m-instruct", batch_size=4)
    assert isinstance(t, TransformersBackend) and t.batch_size == 4
    with pytest.raises(TypeError, match="the transformers backend does not take: 'concurrency'"):
        make_backend("smollm2-135m-instruct", batch_size=4, concurrency=99)
    lb = make_backend("anthropic/claude-3-5-haiku-latest", concurrency=3)
    assert isinstance(lb, LiteLLMBackend) and lb.concurrency == 3
    with pytest.raises(TypeError, match="'batch_size'"):
        make_backend("anthropic/claude-3-5-haiku-latest", batch_size=4)
    assert "secret" not in str(lb.identity())
    g = make_backend("groq/llama-3.1-8b-instant")
    assert isinstance(g, OpenAIHTTPBackend) and g.api_key_env == "GROQ_API_KEY"
    assert g.identity()["api_base"] == "https://api.groq.com/openai/v1"
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert backend_kind(str(folder)) == "transformers"


def test_cost_from_litellm_table():
    from dreammake.llm.costs import token_cost

    assert token_cost("openai", "gpt-4o-mini", 1000, 1000) > 0
    assert token_cost("openai", "no-such-model-xyz", 1000, 1000) == 0.0
