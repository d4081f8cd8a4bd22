"""The Hugging Face Hub: model and dataset repos named in a Dreamfile, pinned to a commit and downloaded when online.

A repo is pinned by the local cache: once `ORG/NAME` has been fetched, its `refs/main` (or `refs/REVISION`) file in
the huggingface_hub cache names the commit every later run uses, without asking the Hub, so a new commit on the
Hub changes nothing until it is asked for (`ORG/NAME@REVISION`, or `dreammake fetch hf:ORG/NAME`, which moves the
pin to the Hub's current commit). The commit sha enters identities and cards.

Online, a repo missing from the cache is downloaded (one notice line with its size first) through huggingface_hub;
offline (`HF_HUB_OFFLINE=1` or `HF_DATASETS_OFFLINE=1`) a missing repo is one error line naming the command that
fetches it. Gated and private repos use the user's token from the environment (`HF_TOKEN`, or the token file
huggingface_hub keeps); dreammake never reads it into anything it stores.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreammake.errors import DreamError, first_line
from dreammake.hfcache import hub_cache

COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_TRUE = {"1", "ON", "YES", "TRUE"}


class HubError(DreamError):
    """A repo that cannot be had: missing offline, not on the Hub, gated without a token."""


@dataclass(frozen=True)
class HubRef:
    """A repo on the Hub: `repo_type` ("model" or "dataset"), `repo` (ORG/NAME), an optional revision."""

    repo_type: str
    repo: str
    revision: str | None = None

    @property
    def spec(self) -> str:
        """How `dreammake fetch` names it: hf:ORG/NAME[@REV] or hf:datasets/ORG/NAME[@REV]."""
        prefix = "hf:datasets/" if self.repo_type == "dataset" else "hf:"
        return f"{prefix}{self.repo}" + (f"@{self.revision}" if self.revision else "")

    def with_commit(self, commit: str) -> str:
        """`ORG/NAME@SHA`: the repo at its resolved commit (for identities and cards)."""
        return f"{self.repo}@{commit}"


def parse_fetch_spec(spec: str) -> HubRef:
    """`hf:ORG/NAME[@REV]` (a model) or `hf:datasets/ORG/NAME[@REV]` (a dataset) → HubRef."""
    ref = spec[3:] if spec.startswith("hf:") else spec
    repo_type = "model"
    if ref.startswith("datasets/"):
        repo_type, ref = "dataset", ref[len("datasets/"):]
    repo, _, revision = ref.partition("@")
    if not _REPO_ID.fullmatch(repo):
        raise HubError(f"{spec!r} is not a Hub repo: write hf:ORG/NAME[@REVISION] or hf:datasets/ORG/NAME")
    return HubRef(repo_type, repo, revision or None)


@functools.lru_cache(maxsize=1)
def litellm_providers() -> frozenset[str]:
    """litellm's provider prefixes (`anthropic`, `openai`, `hosted_vllm`, ...), read from its source without importing
    it (the import costs seconds); the cost table's providers when that file is not where it used to be."""
    spec = importlib.util.find_spec("litellm")
    names: set[str] = set()
    for loc in (spec.submodule_search_locations or []) if spec else []:
        try:
            text = (Path(loc) / "types" / "utils.py").read_text()
        except OSError:
            continue
        start = text.find("class LlmProviders(")
        if start >= 0:
            body = text[start: text.find("\nclass ", start + 1)]
            names.update(re.findall(r'^\s+[A-Z0-9_]+ = "([^"]+)"', body, re.MULTILINE))
    if not names:
        from dreammake.llm.costs import cost_table

        names = {str(e["litellm_provider"]) for e in cost_table().values() if e.get("litellm_provider")}
    from dreammake.llm.openai_http import OPENAI_COMPATIBLE

    return frozenset(names | set(OPENAI_COMPATIBLE))


def model_ref(spec: str) -> HubRef | None:
    """The Hub model a spec names: `hf:ORG/NAME[@REV]`, or a bare `ORG/NAME[@REV]` whose ORG is no litellm provider
    and that is no local path. None for anything else (an alias, a path, an API model)."""
    if spec.startswith("hf:"):
        ref = spec[3:]
    elif spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not os.path.exists(spec):
        if spec.split("/", 1)[0] in litellm_providers():
            return None
        ref = spec
    else:
        return None
    repo, _, revision = ref.partition("@")
    return HubRef("model", repo, revision or None) if _REPO_ID.fullmatch(repo) else None


def offline() -> bool:
    """Whether downloads are off (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE, as huggingface_hub reads them)."""
    return any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def missing_offline(ref: HubRef, what: str = "") -> HubError:
    """The one line for a repo that is not in the cache while offline."""
    return HubError(f"{ref.repo_type} {ref.repo}{'@' + ref.revision if ref.revision else ''} is not in the local "
                    f"Hugging Face cache{what} and downloads are off (HF_HUB_OFFLINE)",
                    hint=f"run `dreammake fetch {ref.spec}` while online")


def _hub_cache() -> Path:
    return Path(hub_cache())


def _repo_folder(ref: HubRef) -> Path:
    return _hub_cache() / f"{ref.repo_type}s--{ref.repo.replace('/', '--')}"


def pinned_commit(ref: HubRef) -> str | None:
    """The commit this repo is pinned to locally: a full sha revision itself, else what the cache's ref names."""
    if ref.revision and COMMIT.fullmatch(ref.revision):
        return ref.revision
    try:
        text = (_repo_folder(ref) / "refs" / (ref.revision or "main")).read_text().strip()
    except OSError:
        return None
    return text if COMMIT.fullmatch(text) else None


def pinned_model_commit(spec: str) -> str | None:
    """The commit a Hub model spec is pinned to in the local cache (None for other specs, or when not fetched)."""
    ref = model_ref(spec)
    return pinned_commit(ref) if ref is not None else None


def pin(ref: HubRef, commit: str) -> None:
    """Point the cache's ref (`main` or the revision) at `commit`, as huggingface_hub does after a download."""
    if ref.revision and COMMIT.fullmatch(ref.revision):
        return
    path = _repo_folder(ref) / "refs" / (ref.revision or "main")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, path)


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError

    return (HfHubHTTPError, OSError, ValueError)


def remote_commit(ref: HubRef) -> str:
    """Ask the Hub which commit the ref's revision (default `main`) names now."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().repo_info(ref.repo, repo_type=ref.repo_type, revision=ref.revision)
    except _hub_errors() as exc:
        raise HubError(f"{ref.repo_type} {ref.repo}: {_reason(exc)}") from None
    if not info.sha:
        raise HubError(f"{ref.repo_type} {ref.repo}: the Hub sent no commit for revision {ref.revision or 'main'}")
    return info.sha


def _reason(exc: BaseException) -> str:
    """A Hub error as a short reason (first line; gated and missing repos said plainly)."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, GatedRepoError):
        return "the repo is gated: accept its terms on the Hub and set HF_TOKEN"
    if isinstance(exc, RevisionNotFoundError):
        return "no such revision on the Hub"
    if isinstance(exc, RepositoryNotFoundError):
        return "no such repo on the Hub (or it is private: set HF_TOKEN)"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def human_size(size: int) -> str:
    """1234567 → '1.2 MB'."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def announce(ref: HubRef, commit: str, allow_patterns: list[str] | None = None) -> bool:
    """Print one notice line on stderr (what, from where, how many files and bytes) when a repo at `commit` has
    files missing from the cache; returns whether it has."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.utils import disable_progress_bars

    try:
        with disable_progress_bars():  # the dry run's own bar says nothing a user needs
            plan = snapshot_download(ref.repo, repo_type=ref.repo_type, revision=commit,
                                     allow_patterns=allow_patterns, dry_run=True)
    except _hub_errors() as exc:
        raise HubError(f"{ref.repo_type} {ref.repo}@{commit[:12]}: {_reason(exc)}") from None
    todo = [f for f in plan if f.will_download]
    if todo:
        print(f"dreammake: downloading {ref.repo_type} {ref.repo}@{commit[:12]} from {constants.ENDPOINT}: "
              f"{len(todo)} file(s), {human_size(sum(f.file_size or 0 for f in todo))}", file=sys.stderr, flush=True)
    return bool(todo)


def download(ref: HubRef, commit: str) -> Path:
    """A repo's snapshot folder at `commit` in the huggingface_hub cache, downloading the files missing there
    (after `announce`)."""
    from huggingface_hub import snapshot_download

    if not announce(ref, commit):
        return _repo_folder(ref) / "snapshots" / commit
    try:
        return Path(snapshot_download(ref.repo, repo_type=ref.repo_type, revision=commit))
    except _hub_errors() as exc:
        raise HubError(f"{ref.repo_type} {ref.repo}@{commit[:12]}: download failed: {_reason(exc)}") from None


_SNAPSHOTS: dict[HubRef, tuple[Path, str]] = {}
_LOCK = threading.Lock()


def model_snapshot(ref: HubRef) -> tuple[Path, str]:
    """(snapshot folder, commit) of a Hub model: the pinned commit from the cache; online, downloaded (and pinned)
    when missing or incomplete; offline, one error line when missing. Memoised per process."""
    with _LOCK:
        if ref not in _SNAPSHOTS:
            _SNAPSHOTS[ref] = _model_snapshot(ref)
        return _SNAPSHOTS[ref]


def _model_snapshot(ref: HubRef) -> tuple[Path, str]:
    commit = pinned_commit(ref)
    if offline():
        folder = _repo_folder(ref) / "snapshots" / commit if commit else None
        if folder is None or not folder.is_dir():
            raise missing_offline(ref)
        return folder, commit
    if commit is None:
        commit = remote_commit(ref)
    folder = download(ref, commit)
    pin(ref, commit)
    return folder, commit


def fetch(ref: HubRef) -> str:
    """`dreammake fetch`: pin the ref to the Hub's current commit and download what is missing; returns the commit.
    A dataset is also prepared by `datasets`, so `rules.hf_dataset` reads it offline afterwards."""
    if offline():
        raise HubError(f"cannot fetch {ref.spec}: downloads are off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set)")
    commit = remote_commit(ref)
    if ref.repo_type == "dataset":
        prepare_hub_dataset(ref, commit)
    else:
        download(ref, commit)
    pin(ref, commit)
    with _LOCK:
        _SNAPSHOTS.pop(ref, None)
    return commit


def prepare_hub_dataset(ref: HubRef, commit: str, config: str | None = None, data_dir: str | None = None,
                        split: str | None = None) -> Any:
    """Download a Hub dataset at `commit` and prepare it in the `datasets` cache (`datasets.load_dataset`), after
    one notice line with its size; returns the split (or every split when `split` is None)."""
    import datasets

    announce(ref, commit)
    try:
        return datasets.load_dataset(ref.repo, config, split=split, revision=commit, data_dir=data_dir)
    except Exception as exc:
        raise HubError(f"cannot download dataset {ref.repo}@{commit[:12]}: {first_line(exc)}") from None
