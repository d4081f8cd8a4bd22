"""openai_http and litellm backends against an in-test fault-injecting server."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dreammake.llm.base import LLMError, Request
from dreammake.llm.limits import TokenBucket, parse_retry_after
from dreammake.llm.litellm_backend import LiteLLMBackend
from dreammake.llm.openai_http import OpenAIHTTPBackend

KEY = "sk-test-SECRET-0123456789abcdef"


def req(text: str, **params) -> Request:
    return Request(messages=({"role": "user", "content": text},), params=params)


def run(backend, requests, cancel=None):
    got: dict[int, object] = {}
    calls: list[int] = []
    active = [0]
    overlap = [False]

    def on_result(i, r):
        active[0] += 1
        overlap[0] |= active[0] > 1
        calls.append(i)
        got[i] = r
        active[0] -= 1

    backend.generate(requests, on_result, cancel or threading.Event())
    assert not overlap[0], "on_result was called concurrently"
    assert len(calls) == len(set(calls)), "a request was reported twice"
    return got


@pytest.fixture
def http_backend(fault_server, monkeypatch):
    monkeypatch.setenv("DM_TEST_KEY", KEY)
    b = OpenAIHTTPBackend("openai/test-model", api_base=fault_server.api_base,
                          api_key_env="DM_TEST_KEY", concurrency=8, max_retries=3,
                          backoff_base=0.01, backoff_max=0.05)
    yield b
    b.close()


def test_retries_then_every_request_answered_once(http_backend, fault_server):
    texts = [f"429x2 a{i}" for i in range(10)] + [f"500x1 b{i}" for i in range(10)]
    texts += [f"plain c{i}" for i in range(30)]
    got = run(http_backend, [req(t, max_tokens=5) for t in texts])
    assert sorted(got) == list(range(len(texts)))
    for i, t in enumerate(texts):
        assert got[i].text == f"echo: {t}"
        assert got[i].prompt_tokens == 5 and got[i].completion_tokens == 3
        assert got[i].cost_usd == 0.0  # local server, unknown model
    assert all(fault_server.answered[t] == 1 for t in texts)
    assert sum(fault_server.answered.values()) == len(texts)
    assert all(fault_server.attempts[t] == 3 for t in texts[:10])
    assert all(fault_server.attempts[t] == 2 for t in texts[10:20])
    assert all(fault_server.attempts[t] == 1 for t in texts[20:])
    # the session is reused: a second generate on the same backend works
    again = run(http_backend, [req("plain again")])
    assert again[0].text == "echo: plain again"


def test_retries_are_bounded(http_backend, fault_server):
    with pytest.raises(LLMError) as ei:
        run(http_backend, [req("500xinf z")])
    msg = str(ei.value)
    assert "test-model" in msg and "3 retries" in msg and "500" in msg
    assert fault_server.attempts["500xinf z"] == 4  # 1 try + max_retries


def test_401_fails_fast_without_leaking_key(http_backend, fault_server):
    t0 = time.monotonic()
    with pytest.raises(LLMError) as ei:
        run(http_backend, [req("401")] + [req(f"plain {i}") for i in range(3)])
    assert time.monotonic() - t0 < 2.0
    msg = str(ei.value)
    assert fault_server.attempts["401"] == 1
    assert "test-model" in msg and "401" in msg
    assert KEY not in msg and "SECRET" not in msg
    assert "\n" not in msg


def test_400_fails_fast(http_backend, fault_server):
    with pytest.raises(LLMError, match=r"test-model: HTTP 400 .*bad max_tokens"):
        run(http_backend, [req("400")])
    assert fault_server.attempts["400"] == 1


def test_payload_params_and_seed(http_backend, fault_server):
    r = Request(messages=({"role": "user", "content": "plain p"},),
                params={"temperature": 0.7, "top_p": 0.9, "max_tokens": 7, "stop": ["x"], "n": 3},
                seed=11, sample_index=0)
    r2 = Request(messages=r.messages, params=r.params, seed=11, sample_index=1)
    run(http_backend, [r, r2])
    bodies = sorted(fault_server.bodies, key=lambda b: b["seed"] != 11)
    assert bodies[0]["seed"] == 11 and bodies[1]["seed"] != 11
    for b in bodies:
        assert b["model"] == "test-model"
        assert b["temperature"] == 0.7 and b["top_p"] == 0.9 and b["max_tokens"] == 7
        assert b["stop"] == ["x"] and "n" not in b


def test_system_prompt_prepended(fault_server):
    b = OpenAIHTTPBackend("openai/m", api_base=fault_server.api_base, api_key_env=None,
                          system_prompt="Be terse.")
    try:
        run(b, [req("plain s")])
        assert fault_server.bodies[-1]["messages"][0] == {"role": "system", "content": "Be terse."}
        ident = b.identity()
        assert ident["system_prompt"] == "Be terse." and ident["model"] == "m"
    finally:
        b.close()


def test_identity_has_no_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    b = OpenAIHTTPBackend("openai/gpt-4o-mini", api_base="https://user:pw@example.com/v1?key=abc")
    assert "pw" not in str(b.identity()) and "abc" not in str(b.identity())
    assert KEY not in str(b.identity())
    assert b.identity()["api_base"] == "https://example.com/v1"


def test_cancel_stops_early(fault_server):
    b = OpenAIHTTPBackend("openai/m", api_base=fault_server.api_base, api_key_env=None,
                          concurrency=2)
    cancel = threading.Event()
    got = {}

    def on_result(i, r):
        got[i] = r
        cancel.set()

    try:
        b.generate([req(f"plain k{i}") for i in range(50)], on_result, cancel)
    finally:
        b.close()
    assert 1 <= len(got) < 50


def test_token_bucket_rate():
    async def main():
        bucket = TokenBucket(per_minute=120)  # 2 per second, burst 120
        await bucket.take(120)
        t0 = time.monotonic()
        await bucket.take(1)
        await bucket.take(1)
        return time.monotonic() - t0

    elapsed = asyncio.run(main())
    assert 0.8 <= elapsed <= 1.6


def test_rpm_limit_paces_requests(fault_server):
    b = OpenAIHTTPBackend("openai/m", api_base=fault_server.api_base, api_key_env=None,
                          concurrency=8, rpm=600)  # burst 600, then 10/s
    b._rpm.level = 0  # start empty to observe pacing
    try:
        t0 = time.monotonic()
        got = run(b, [req(f"plain r{i}") for i in range(6)])
        elapsed = time.monotonic() - t0
    finally:
        b.close()
    assert len(got) == 6 and 0.45 <= elapsed <= 2.0


def test_parse_retry_after():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({}) is None


def test_litellm_backend_retries_and_auth(fault_server, monkeypatch):
    monkeypatch.setenv("DM_TEST_KEY", KEY)
    b = LiteLLMBackend("openai/test-model", api_base=fault_server.api_base,
                       api_key_env="DM_TEST_KEY", concurrency=4, max_retries=3,
                       backoff_base=0.01, backoff_max=0.05)
    try:
        texts = ["429x1 l0", "500x2 l1", "plain l2", "plain l3"]
        got = run(b, [req(t, max_tokens=5, temperature=0) for t in texts])
        assert [got[i].text for i in range(4)] == [f"echo: {t}" for t in texts]
        assert got[0].completion_tokens == 3
        assert fault_server.attempts["429x1 l0"] == 2 and fault_server.attempts["500x2 l1"] == 3
        assert all(fault_server.answered[t] == 1 for t in texts)
        with pytest.raises(LLMError) as ei:
            run(b, [req("401")])
        msg = str(ei.value)
        assert "test-model" in msg and "401" in msg and KEY not in msg and "SECRET" not in msg
        assert fault_server.attempts["401"] == 1
    finally:
        b.close()
