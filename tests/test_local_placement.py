"""`place(gpus)` on the local backends, checked on CPU: what would reach `from_pretrained` / vLLM's `LLM()`."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from dreammake.llm.transformers_backend import TransformersBackend
from dreammake.llm.vllm_backend import VLLMBackend


class FakeModel:
    """What `_load` touches on a loaded model."""

    def __init__(self, **kwargs):
        self.kwargs, self.moved_to = kwargs, []
        self.generation_config = SimpleNamespace(pad_token_id=None)

    def to(self, device):
        self.moved_to.append(device)
        return self

    def eval(self):
        return self


def loaded(monkeypatch, backend: TransformersBackend) -> FakeModel:
    """Run the backend's `_load` against a fake `from_pretrained` (no weights, no CUDA)."""
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        staticmethod(lambda path, **kwargs: FakeModel(**kwargs)))
    monkeypatch.setattr(backend, "_tokenizer", lambda: SimpleNamespace(pad_token_id=0))
    monkeypatch.setattr(backend, "_checkpoint", lambda: Path("model"))
    return backend._load()


@pytest.mark.parametrize(("gpus", "device_map", "moved_to"), [(0, None, ["cpu"]), (1, None, ["cuda"]),
                                                               (2, "auto", []), (4, "auto", [])])
def test_transformers_place_decides_device_or_device_map(monkeypatch, gpus, device_map, moved_to):
    monkeypatch.setattr("dreammake.gpus.detect_gpus", lambda: 0)
    backend = TransformersBackend("smollm2-135m-instruct", dtype="bfloat16")
    backend.place(gpus)
    model = loaded(monkeypatch, backend)
    assert model.kwargs.get("device_map") == device_map
    assert model.moved_to == moved_to


def test_transformers_user_device_wins_over_placement(monkeypatch):
    backend = TransformersBackend("smollm2-135m-instruct", dtype="float32", device="cpu")
    backend.place(2)
    model = loaded(monkeypatch, backend)
    assert "device_map" not in model.kwargs and model.moved_to == ["cpu"]


def test_placement_is_no_part_of_identity(monkeypatch, tmp_path):
    monkeypatch.setattr("dreammake.gpus.detect_gpus", lambda: 1)  # a GPU machine: the device is cuda either way
    import dreammake.llm.transformers_backend as tb

    monkeypatch.setattr(tb, "resolve", lambda spec: tmp_path / "model")
    monkeypatch.setattr(tb, "weights_hash", lambda path: "w")
    monkeypatch.setattr(tb, "read_chat_template", lambda path: "t")
    identities = []
    for gpus in (0, 1, 2):
        backend = TransformersBackend(str(tmp_path / "model"), dtype="bfloat16")
        monkeypatch.setattr(backend, "_checkpoint", lambda: tmp_path / "model")
        backend.place(gpus)
        identities.append(backend.identity())
    assert identities[0] == identities[1] == identities[2]
    vllm = [VLLMBackend(str(tmp_path)) for _ in range(2)]
    vllm[1].place(4)
    assert vllm[0].identity() == vllm[1].identity()


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in `vllm` package whose `LLM` records the keywords it was started with."""
    started: list[dict] = []
    vllm = types.ModuleType("vllm")
    vllm.LLM = lambda model, **kwargs: started.append(kwargs) or SimpleNamespace()
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: False)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    return started


@pytest.mark.parametrize(("gpus", "options", "size"), [(0, {}, None), (1, {}, 1), (4, {}, 4),
                                                        (4, {"tensor_parallel_size": 2}, 2)])
def test_vllm_place_sets_tensor_parallel_size_unless_given(fake_vllm, tmp_path, gpus, options, size):
    backend = VLLMBackend(str(tmp_path), **options)
    backend.place(gpus)
    backend._engine()
    assert fake_vllm[0].get("tensor_parallel_size") == size
