"""Content hashes of the project's files and folders (inputs and targets), cached by stat signature in the
state so unchanged files are never re-read. The hashing itself is `dreammake.content`'s, as for models."""

from __future__ import annotations

import os
from stat import S_ISDIR

from dreammake.content import folder_digest, hash_file_bytes, walk_files
from dreammake.state import State, stat_signature
from dreammake.targets import NOT_CONTENT, TEMP_MARK


class Hasher:
    """Content hashes through the state's hash cache; remembers which cached files changed content."""

    def __init__(self, state: State):
        self.state = state
        self.cache = state.file_hashes()
        self.changed: set[str] = set()  # files whose content differs from the cached hash

    def file_hash(self, path: str, st: os.stat_result | None = None) -> str | None:
        """Hash of a file, or None when it does not exist."""
        if st is None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
        sig = stat_signature(st)
        cached = self.cache.get(path)
        if cached is not None and cached[0] == sig:
            return cached[1]
        content_hash = hash_file_bytes(path)
        if cached is not None and cached[1] != content_hash:
            self.changed.add(path)
        self.state.remember_file(path, sig, content_hash)
        return content_hash

    def folder_hash(self, path: str) -> str | None:
        """Hash over (relative path, content hash) of every file in a folder, or None if missing."""
        if not os.path.isdir(path):
            return None
        return folder_digest(_walk(path), self.file_hash)

    def moved(self, old_root: str, new_root: str) -> None:
        """A folder was renamed: its files keep size, mtime and inode, so their cached hashes carry over
        (a checkpoint is not read again after it is put in place)."""
        for rel, full in _walk(new_root):
            cached = self.cache.get(os.path.join(old_root, rel))
            if cached is not None:
                self.state.remember_file(full, cached[0], cached[1])

    def content_hash(self, path: str) -> str | None:
        """Hash of a file or folder target; None when missing."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if S_ISDIR(st.st_mode):
            return self.folder_hash(path)
        cached = self.cache.get(path)  # the file_hash fast path, inlined: a no-op check does this 30,000 times
        if cached is not None and cached[0] == (st.st_size, st.st_mtime_ns, st.st_ino):
            return cached[1]
        return self.file_hash(path, st)


def _walk(root: str) -> list[tuple[str, str]]:
    """A folder target's files, without temp files, its cards and training logs."""
    return walk_files(root, lambda folder, name: TEMP_MARK in name or (folder == root and name in NOT_CONTENT))
