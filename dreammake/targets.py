"""The target protocol: every output (and input) path is a Parquet table, a checkpoint folder or a plain file,
and each answers the same few questions — exists, content hash, load, place atomically, remove, card files.

The engine asks the target instead of branching on a `.parquet` suffix or `os.path.isdir`.

Layout of a checkpoint folder (written by trainers, read by `llm(target(...))`, cards and publishing):

    models/tweet-model/
      config.json, model.safetensors …   a full model, or
      adapter_config.json, adapter_model.safetensors   a LoRA adapter over its base, or
      dreammake-api-model.json           a model fine-tuned through an API (`train_openai_finetune`)
      dreammake-base.txt                 an adapter's base model spec as the Dreamfile gave it
      README.md, dreammake-card.json     the cards
      dreammake-target.json              the fingerprint that built it (adoption after a kill)
      metrics.parquet, train.log, training_args.json   training logs (timings, paths; not published)

Cards, the marker and the training logs are not part of a checkpoint's content hash (`NOT_CONTENT`): two
builds of the same recipe that wrote the same weights are the same model, for rebuild decisions and for the
row-cache keys of generations with it.

A file target's cards lie beside it: `targets/tweets.parquet` → `targets/tweets.README.md` and
`targets/tweets.dreammake-card.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dreammake.filehash import Hasher

PARQUET_SUFFIXES = (".parquet", ".pq")
TEMP_MARK = ".dmtmp-"  # in the names of temp outputs: `.tweets.parquet.dmtmp-<pid>-<random>`
CARD_MD = "README.md"
CARD_JSON = "dreammake-card.json"
TARGET_MARKER = "dreammake-target.json"  # in a folder target: the build it came from (see dreammake.adopt)
CARD_FILES = (CARD_MD, CARD_JSON, TARGET_MARKER)  # files dreammake adds to a folder target: not its content
BASE_MARKER = "dreammake-base.txt"  # an adapter checkpoint's base model spec, as given in the Dreamfile
ADAPTER_CONFIG = "adapter_config.json"
API_MODEL_FILE = "dreammake-api-model.json"  # a fine-tuning API target: the fine-tuned model's id and API base
TRAINING_LOGS = frozenset({"training_args.json", "metrics.parquet", "train.log"})  # timings, paths: not the model
TRAINING_RECORDS = TRAINING_LOGS | {BASE_MARKER}  # kept out of published weights
NOT_CONTENT = frozenset(CARD_FILES) | TRAINING_LOGS  # at a checkpoint's top: outside its content hash


class Target:
    """An output or input path of a rule. Subclasses fix how it is hashed, loaded, placed and removed."""

    is_table = False
    is_folder = False

    def __init__(self, path: str):
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def exists(self) -> bool:
        """Whether something is at the path."""
        return os.path.lexists(self.path)

    def content_hash(self, hasher: Hasher) -> str | None:
        """The content hash (through the stat-signature cache), or None when missing."""
        return hasher.content_hash(self.path)

    def load(self, content_hash: str | None = None) -> Any:
        """What a user function receives for this input: the path itself, unless the kind says otherwise."""
        return self.path

    def card_paths(self) -> tuple[str, str]:
        """Where its Markdown and JSON cards live."""
        stem = os.path.splitext(self.path)[0]
        return f"{stem}.{CARD_MD}", f"{stem}.{CARD_JSON}"

    def place(self, tmp: str) -> None:
        """Atomically replace the target with the finished temp output `tmp` (same folder, so a rename)."""
        os.replace(tmp, self.path)

    def size(self) -> int:
        """Bytes on disk."""
        return os.path.getsize(self.path)

    def remove(self) -> bool:
        """Remove the target and its cards; False when there was nothing to remove."""
        for card in self.card_paths():
            if os.path.lexists(card):
                os.remove(card)
        if not os.path.lexists(self.path):
            return False
        remove_path(self.path)
        return True


class FileTarget(Target):
    """A plain file (a source file, or an output a user function writes itself)."""


class ParquetTable(FileTarget):
    """A Parquet dataset: loaded as a memory-mapped `datasets.Dataset`; its metadata names the building rule."""

    is_table = True

    def load(self, content_hash: str | None = None) -> Any:
        """The table as a `datasets.Dataset` (a path when it is not a file, e.g. a folder of shards)."""
        if not os.path.isfile(self.path):
            return self.path
        from dreammake.tables import load_dataset

        return load_dataset(self.path, content_hash)


class CheckpointFolder(Target):
    """A folder target (a model checkpoint): content hashed over its files without the cards; see the module
    docstring for its layout."""

    is_folder = True

    def card_paths(self) -> tuple[str, str]:
        return os.path.join(self.path, CARD_MD), os.path.join(self.path, CARD_JSON)

    def place(self, tmp: str) -> None:
        old = temp_path(self.path) + "-old"
        if os.path.lexists(self.path):
            os.rename(self.path, old)
        os.rename(tmp, self.path)
        remove_path(old)

    def size(self) -> int:
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(self.path) for f in files)

    def remove(self) -> bool:
        if not os.path.lexists(self.path):
            return False
        remove_path(self.path)  # the cards are inside
        return True

    def is_adapter(self) -> bool:
        """Whether the checkpoint is a LoRA adapter (over the base named in `dreammake-base.txt`)."""
        return os.path.exists(os.path.join(self.path, ADAPTER_CONFIG))

    def api_model(self) -> dict[str, Any] | None:
        """The API model a fine-tuning API target names (`dreammake-api-model.json`: {"model", "api_base"}), or
        None for a checkpoint of weights."""
        try:
            with open(os.path.join(self.path, API_MODEL_FILE)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return {"model": data["model"], "api_base": data.get("api_base")}

    def adapter_base(self) -> str | None:
        """An adapter's base model: the spec the Dreamfile gave (`dreammake-base.txt`), else PEFT's config."""
        try:
            with open(os.path.join(self.path, BASE_MARKER)) as f:
                return f.read().strip() or None
        except OSError:
            pass
        try:
            with open(os.path.join(self.path, ADAPTER_CONFIG)) as f:
                return json.load(f).get("base_model_name_or_path")
        except (OSError, ValueError):
            return None


def target_for(path: str, folder: bool | None = None) -> Target:
    """The target at `path`. `folder` says whether the rule declared it as a folder (trailing slash); when
    None, what is on disk decides."""
    if folder is None:
        folder = os.path.isdir(path) and not os.path.islink(path)
    if folder:
        return CheckpointFolder(path)
    if path.endswith(PARQUET_SUFFIXES):
        return ParquetTable(path)
    return FileTarget(path)


def temp_path(path: str) -> str:
    """A temp path in the same folder as `path` (so placing it is an atomic rename)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_table_path(path: str) -> bool:
    """Whether a path names a Parquet table (by its suffix; nothing is read)."""
    return path.endswith(PARQUET_SUFFIXES)


def remove_path(path: str) -> None:
    """Remove a file, a link (never what it points to) or a folder tree; missing is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
