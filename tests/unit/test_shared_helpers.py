"""Helpers several modules share: the Hugging Face cache resolver and the chat-template reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dreammake import hfcache
from dreammake.llm.chat_template import read_chat_template

pytestmark = pytest.mark.usefixtures("project_dir")  # each test in its own empty project folder

HF_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "XDG_CACHE_HOME")


@pytest.fixture
def hf_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Hugging Face variables, and huggingface_hub / datasets taken as not imported."""
    for name in HF_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "huggingface_hub.constants", None)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "datasets.config", None)  # type: ignore[arg-type]
    monkeypatch.setenv("HOME", "/home/u")
    return monkeypatch


def test_hub_cache_precedence(hf_env: pytest.MonkeyPatch) -> None:
    assert hfcache.hub_cache() == "/home/u/.cache/huggingface/hub"
    hf_env.setenv("XDG_CACHE_HOME", "/xdg")
    assert hfcache.hub_cache() == "/xdg/huggingface/hub"
    hf_env.setenv("HF_HOME", "~/hf")
    assert hfcache.hub_cache() == "/home/u/hf/hub" and hfcache.datasets_cache() == "/home/u/hf/datasets"
    hf_env.setenv("HUGGINGFACE_HUB_CACHE", "/old")
    assert hfcache.hub_cache() == "/old"
    hf_env.setenv("HF_HUB_CACHE", "/new")
    assert hfcache.hub_cache() == "/new"
    hf_env.setenv("HF_DATASETS_CACHE", "/ds")
    assert hfcache.datasets_cache() == "/ds"


def test_an_imported_huggingface_hub_decides(hf_env: pytest.MonkeyPatch) -> None:
    class Constants:
        HF_HUB_CACHE = "/from/hub"

    hf_env.setitem(sys.modules, "huggingface_hub.constants", Constants)  # type: ignore[arg-type]
    hf_env.setenv("HF_HUB_CACHE", "/env")
    assert hfcache.hub_cache() == "/from/hub"


def test_chat_template_layouts(tmp_path: Path) -> None:
    assert read_chat_template(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "from config"}))
    assert read_chat_template(tmp_path) == "from config"
    (tmp_path / "chat_template.json").write_text("not json")  # unreadable: the next layout is used
    assert read_chat_template(tmp_path) == "from config"
    named = [{"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": named}))
    assert json.loads(read_chat_template(tmp_path) or "") == named
    (tmp_path / "chat_template.jinja").write_text("from jinja")
    assert read_chat_template(tmp_path) == "from jinja"
