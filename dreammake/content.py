"""One content identity for everything dreammake hashes: inputs, targets, model weights, adapters, embedders.

A file's identity is xxh3-128 over its bytes, looked up first in a cache keyed by its stat signature
(size, mtime_ns, inode), so an unchanged file is never read twice, and a file rewritten in place — even
at the same size — is read again. A folder's identity is one hash over (relative path, file identity) of
its files. Two caches hold the signatures: the project's state (`files` table, for inputs and targets,
see `dreammake.filehash`) and, for models that live outside any project (the Hugging Face cache, pip
wheels, converted GGUF folders), `~/.cache/dreammake/filehash/`, shared by all projects.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import xxhash

CHUNK = 8 << 20
Signature = tuple[int, int, int]  # (size, mtime_ns, inode)


def signature(st: os.stat_result) -> Signature:
    """A file's stat signature (size, mtime_ns, inode): while all three match, its content is taken as unchanged
    and its hash is not recomputed."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def hash_file_bytes(path: str | os.PathLike[str]) -> str:
    """xxh3-128 of a file's bytes, streamed."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def text_hash(text: str | None) -> str | None:
    """xxh3-128 of a text (a chat template, a system prompt), None for None."""
    return None if text is None else xxhash.xxh3_128_hexdigest(text.encode())


def walk_files(root: str, skip: Callable[[str, str], bool]) -> list[tuple[str, str]]:
    """(relative path, full path) of every file under `root`, sorted; `skip(folder, name)` leaves an entry out
    (a skipped folder is not entered). Links are not followed into folders."""
    out = []
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if skip(folder, entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    out.append((os.path.relpath(entry.path, root), entry.path))
    out.sort()
    return out


def folder_digest(files: list[tuple[str, str]], file_hash: Callable[[str], str | None]) -> str:
    """One hash over (relative path, content hash) of a folder's files (as listed by `walk_files`)."""
    h = xxhash.xxh3_128()
    for rel, full in files:
        h.update(f"{rel}\0{file_hash(full)}\n".encode())
    return h.hexdigest()


# -- models: the shared cache --------------------------------------------------------------------------------
_lock = threading.Lock()
_memo: dict[tuple[str, Signature], str] = {}


def cache_root() -> Path:
    """The dreammake cache folder (env DREAMMAKE_CACHE, else ~/.cache/dreammake)."""
    env = os.environ.get("DREAMMAKE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dreammake"


def file_hash(path: str | os.PathLike[str]) -> str:
    """Content hash of a file outside the project (a model's weights), through the shared cache."""
    real = os.path.realpath(path)
    key = (real, signature(os.stat(real)))
    with _lock:
        cached = _memo.get(key)
    if cached is not None:
        return cached
    record = cache_root() / "filehash" / (xxhash.xxh3_64_hexdigest(repr(key).encode()) + ".json")
    try:
        data = json.loads(record.read_text())
        if data["key"] == [key[0], list(key[1])]:
            with _lock:
                _memo[key] = data["hash"]
            return data["hash"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = hash_file_bytes(real)
    with _lock:
        _memo[key] = digest
    with contextlib.suppress(OSError):
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": [key[0], list(key[1])], "hash": digest}))
        os.replace(tmp, record)
    return digest


def weights_hash(path: str | os.PathLike[str]) -> str:
    """The content identity of a model file or folder (weights, adapter, embedder): every file's bytes, through
    the shared cache. Hidden files (.cache/, .gitattributes, lock files) are not part of a model, nor are the
    cards and training logs at the top of a checkpoint (`dreammake.targets.NOT_CONTENT`)."""
    from dreammake.targets import NOT_CONTENT

    path = os.fspath(path)
    if not os.path.isdir(path):
        return file_hash(path)

    def skip(folder: str, name: str) -> bool:
        return name.startswith(".") or (folder == path and name in NOT_CONTENT)

    return folder_digest(walk_files(path, skip), file_hash)
