"""Publishing a target to the Hugging Face Hub, or exporting the same folder locally.

A dataset target (a rule's Parquet outputs) becomes `data/<split>.parquet` files plus
README.md and dreammake-card.json; a checkpoint folder becomes its model/adapter and
tokenizer files plus the cards. Only files inside the target are uploaded. The token comes
from huggingface_hub (HF_TOKEN or the saved login), is sent only to the Hub endpoint
(HF_ENDPOINT, read when publishing) and is never written or printed: a file that contains it
stops the upload.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dreammake.cards import CARD_FILES, CARD_JSON, CARD_MD
from dreammake.cards.build import build_card, card_type, splits
from dreammake.cards.render import card_json, render_markdown
from dreammake.cards.secrets import redact
from dreammake.errors import DreamError
from dreammake.targets import TRAINING_RECORDS

if TYPE_CHECKING:
    from dreammake.graph import Graph, Job
    from dreammake.state import State

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TEXT_SUFFIXES = (".json", ".md", ".txt", ".yaml", ".yml", ".jinja", ".py", ".cfg", ".csv", ".jsonl")
SCAN_LIMIT = 20 << 20  # text files up to this size are checked for the token before upload


@dataclass(frozen=True)
class Upload:
    """One file of a bundle: copied from `local`, or generated (`data`)."""

    path_in_repo: str
    local: str | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        return os.path.getsize(self.local) if self.local else len(self.data or b"")


@dataclass(frozen=True)
class Bundle:
    """What publishing a target uploads."""

    name: str
    repo_type: str  # "dataset" or "model"
    files: tuple[Upload, ...]


def make_bundle(graph: Graph, state: State, job: Job, repo_id: str | None = None, template: str | None = None,
                license: str | None = None) -> Bundle:  # noqa: A002 - the Hub's own word
    """The files that publishing `job`'s outputs would upload (the cards rendered for `repo_id`)."""
    if job.rule.is_phony:
        raise DreamError(f"{job.name} is an aggregate rule with no outputs", hint="publish one of its targets")
    missing = [p for p in job.output_paths if not os.path.exists(p)]
    if missing:
        raise DreamError(f"{missing[0]} is not built yet", hint=f"run `dreammake {missing[0]}` first")
    kind = card_type(job)
    if kind == "model":
        folder = job.output_paths[0]
        files = list(folder_files(folder))
        card = build_card(graph, state, job, repo_id=repo_id, license=license)
    else:
        parts = splits(job)
        if not parts:
            raise DreamError(f"{job.name} makes no Parquet file to publish")
        layout = {split: f"data/{split}.parquet" for split, _ in parts}
        files = [Upload(layout[split], local=path) for split, path in parts]
        card = build_card(graph, state, job, files=layout, repo_id=repo_id, license=license)
    files += [Upload(CARD_MD, data=render_markdown(card, template).encode()),
              Upload(CARD_JSON, data=card_json(card).encode())]
    return Bundle(job.name, kind, tuple(files))


def folder_files(folder: str) -> list[Upload]:
    """The publishable files of a checkpoint folder: not hidden, not dreammake's own, not its cards."""
    root = os.path.realpath(folder)
    out = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(current, name), folder)
            if name.startswith(".") or (current == folder and (name in CARD_FILES or name in TRAINING_RECORDS)):
                continue
            path = os.path.join(current, name)
            real = os.path.realpath(path)
            if os.path.commonpath([root, real]) != root:
                raise DreamError(f"refusing to publish {path}: it points outside the target ({real})")
            out.append(Upload(rel.replace(os.sep, "/"), local=path))
    return out


def describe(bundle: Bundle) -> list[str]:
    """One line per file: size, path in the repo, and where it comes from (for --dry-run)."""
    return [f"{u.size:>12,}  {u.path_in_repo}  ({u.local or 'generated'})" for u in bundle.files]


def export(bundle: Bundle, dest: str) -> list[str]:
    """Write the bundle's files under `dest` (the same layout as the Hub repo); returns the paths."""
    written = []
    for u in bundle.files:
        path = os.path.join(dest, *u.path_in_repo.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if u.local is not None:
            if os.path.exists(path) and os.path.samefile(u.local, path):
                raise DreamError(f"export folder {dest} is the target itself", hint="pick another folder")
            shutil.copyfile(u.local, path)
        else:
            with open(path, "wb") as f:
                f.write(u.data or b"")
        written.append(path)
    return written


def check_no_secret(bundle: Bundle, token: str) -> None:
    """Refuse to upload a generated file or a text file that contains the token."""
    needle = token.encode()
    for u in bundle.files:
        if u.data is not None:
            found = needle in u.data
        elif u.local.endswith(TEXT_SUFFIXES) and u.size <= SCAN_LIMIT:
            with open(u.local, "rb") as f:
                found = needle in f.read()
        else:
            continue
        if found:
            raise DreamError(f"refusing to publish: {u.local or u.path_in_repo} contains your Hugging Face token")


def check_repo_id(repo_id: str) -> None:
    """Fail with one line unless `repo_id` looks like ORG/NAME."""
    if not REPO_ID.match(repo_id):
        raise DreamError(f"--repo {repo_id!r} is not ORG/NAME")


def publish(bundle: Bundle, repo_id: str, private: bool = False) -> str:
    """Create the repo (if needed) and upload the bundle in one commit; returns the commit URL."""
    check_repo_id(repo_id)
    from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise DreamError("publishing needs the network, but HF_HUB_OFFLINE is set", hint="unset HF_HUB_OFFLINE")
    token = get_token()
    if not token:
        raise DreamError("no Hugging Face token", hint="set HF_TOKEN or run `hf auth login`")
    check_no_secret(bundle, token)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    operations = [CommitOperationAdd(path_in_repo=u.path_in_repo, path_or_fileobj=u.local or u.data or b"")
                  for u in bundle.files]
    try:
        api.create_repo(repo_id, repo_type=bundle.repo_type, private=private, exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=f"dreammake publish {bundle.name}",
                                 repo_type=bundle.repo_type)
    except Exception as exc:  # HfHubHTTPError, connection errors, invalid card metadata
        raise DreamError(f"publishing to {repo_id} failed: {redact(str(exc)).replace(token, '***')}") from None
    return str(info.commit_url)
