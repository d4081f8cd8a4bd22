"""A local stand-in for the Hugging Face Hub on 127.0.0.1 (select it with HF_ENDPOINT=server.url):

* publishing: exactly the endpoints huggingface_hub 2.4 calls to create a repo and commit files
  (`/api/repos/create`, `/api/validate-yaml`, `.../preupload/REV`, `.../commit/REV`); every file is accepted in
  "regular" (inline base64) mode, so no LFS/Xet storage is needed;
* downloads: repo info at a revision (`/api/{models,datasets}/REPO/revision/REV`), file trees
  (`.../tree/REV[/PATH]`), `.../paths-info/REV`, and the files themselves (`/[datasets/]REPO/resolve/REV/FILE`,
  HEAD and GET, with the X-Repo-Commit, ETag and Content-Length headers huggingface_hub reads, and byte ranges).

Every commit is kept as a snapshot, so a revision (a commit sha or `main`) serves the files as they were then.
A gated repo answers 401 without the server's token. `downloads` counts the file bodies sent, per repo.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

_REPO_PATH = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)")
_API_READ = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree|paths-info)/([^/]+)(/.*)?)?$")
_RESOLVE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


@dataclass
class Repo:
    repo_type: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)
    gated: bool = False
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> files at that commit
    main: str | None = None  # the sha `main` points at

    def record(self, oid: str, summary: str) -> None:
        """A new commit `oid` holding the current files; `main` moves to it."""
        self.commits.append(summary)
        self.snapshots[oid] = dict(self.files)
        self.main = oid

    def at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """(sha, files) for a revision: `main`, a full sha or a sha prefix of 7+ characters."""
        if revision == "main" and self.main is not None:
            return self.main, self.snapshots[self.main]
        for oid, files in self.snapshots.items():
            if len(revision) >= 7 and oid.startswith(revision):
                return oid, files
        return None


def blob_id(data: bytes) -> str:
    """A file's git blob id (what the Hub calls its oid and sends as the ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    """Runs the fake Hub in a thread; `repos` maps "dataset:org/name" to what was committed."""

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization header
        self.downloads: Counter[str] = Counter()  # "model:org/name" -> file bodies sent
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        return self.repos[f"{repo_type}:{repo_id}"]

    def push(self, repo_type: str, repo_id: str, files: dict[str, bytes], summary: str = "upload",
             gated: bool = False) -> str:
        """Commit `files` (added to or replacing those already there) to a repo, creating it; returns the sha."""
        repo = self.repos.setdefault(f"{repo_type}:{repo_id}", Repo(repo_type, private=False, gated=gated))
        repo.files.update(files)
        oid = hashlib.sha1(f"{repo_id}:{len(repo.commits)}:{sorted(repo.files)}".encode()
                           + b"".join(repo.files[k] for k in sorted(repo.files))).hexdigest()
        repo.record(oid, summary)
        return oid

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._read(send_body=True)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._read(send_body=False)

            def _read(self, send_body: bool, body: bytes = b"") -> None:
                """Repo info, trees, paths-info and file downloads."""
                url = urlsplit(self.path)
                path = unquote(url.path)
                hub.requests.append((self.command, self.path, self.headers.get("Authorization")))
                api, resolve = _API_READ.match(path), _RESOLVE.match(path)
                if api:
                    kind, repo_id, what, revision, sub = api.groups()
                    repo_type = kind[:-1]
                else:
                    if resolve is None:
                        return self._reply(404, {"error": f"no endpoint {path}"})
                    dataset, repo_id, revision, sub = resolve.groups()
                    repo_type, what = ("dataset" if dataset else "model"), "resolve"
                repo = hub.repos.get(f"{repo_type}:{repo_id}")
                if repo is None or repo.main is None:
                    return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if repo.gated and self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._reply(401, {"error": f"Access to {repo_id} is restricted: it is gated"},
                                       {"X-Error-Code": "GatedRepo"})
                found = repo.at(revision or "main")
                if found is None:
                    return self._reply(404, {"error": f"Invalid rev id: {revision}"},
                                       {"X-Error-Code": "RevisionNotFound"})
                sha, files = found
                if what == "resolve":
                    return self._file(repo_type, repo_id, sha, files, sub, send_body)
                if what == "tree":
                    recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
                    return self._reply(200, _tree(files, (sub or "").strip("/"), recursive))
                if what == "paths-info":
                    wanted = parse_qs(body.decode()).get("paths", []) if body else []
                    if not wanted and body.startswith(b"{"):
                        wanted = json.loads(body).get("paths", [])
                    return self._reply(200, _paths_info(files, wanted))
                siblings = [{"rfilename": name, "size": len(data)} for name, data in sorted(files.items())]
                self._reply(200, {"id": repo_id, "_id": repo_id, "sha": sha, "siblings": siblings,
                                  "private": repo.private, "gated": repo.gated and "auto", "disabled": False,
                                  "downloads": 0, "likes": 0, "tags": [], "cardData": {},
                                  "lastModified": "2026-01-01T00:00:00.000Z"})

            def _file(self, repo_type: str, repo_id: str, sha: str, files: dict[str, bytes], name: str,
                      send_body: bool) -> None:
                if name not in files:
                    return self._reply(404, {"error": f"{name} does not exist"}, {"X-Error-Code": "EntryNotFound",
                                                                                 "X-Repo-Commit": sha})
                data = files[name]
                status, start, end = 200, 0, len(data)
                ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
                if ranged and ranged.group(1):
                    start = int(ranged.group(1))
                    end = min(len(data), int(ranged.group(2)) + 1) if ranged.group(2) else len(data)
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(end - start))
                self.send_header("X-Repo-Commit", sha)
                self.send_header("ETag", f'"{blob_id(data)}"')
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                self.end_headers()
                if send_body:
                    hub.downloads[f"{repo_type}:{repo_id}"] += 1
                    self.wfile.write(data[start:end])

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "/paths-info/" in self.path:
                    return self._read(send_body=True, body=body)
                auth = self.headers.get("Authorization")
                hub.requests.append(("POST", self.path, auth))
                if auth != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                if self.path == "/api/repos/create":
                    return self._create(json.loads(body))
                if self.path == "/api/validate-yaml":
                    return self._validate(json.loads(body))
                match = _REPO_PATH.match(self.path)
                if match is None:
                    return self._reply(404, {"error": f"no endpoint {self.path}"})
                kind, repo_id, action, _revision = match.groups()
                repo = hub.repos.get(f"{kind[:-1]}:{repo_id}")
                if repo is None:
                    return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False, "oid": None} for f in files]})
                return self._commit(repo, kind, repo_id, body)

            def _create(self, payload: dict[str, Any]) -> None:
                repo_type = payload.get("type") or "model"
                repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") \
                    else payload["name"]
                key = f"{repo_type}:{repo_id}"
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                url = f"{hub.url}/{prefix}{repo_id}"
                if key in hub.repos:
                    return self._reply(409, {"error": "You already created this repo", "url": url})
                hub.repos[key] = Repo(repo_type, payload.get("visibility") == "private")
                self._reply(200, {"url": url, "name": repo_id, "id": repo_id})

            def _validate(self, payload: dict[str, Any]) -> None:
                text = payload["content"]
                errors = []
                if text.startswith("---"):
                    try:
                        yaml.safe_load(text[3 : text.index("\n---", 3)])
                    except (ValueError, yaml.YAMLError) as exc:
                        errors.append({"message": f"invalid YAML: {exc}"})
                self._reply(400 if errors else 200, {"errors": errors, "warnings": []})

            def _commit(self, repo: Repo, kind: str, repo_id: str, body: bytes) -> None:
                header = None
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        header = item["value"]
                    elif item["key"] == "file":
                        value = item["value"]
                        repo.files[value["path"]] = base64.b64decode(value["content"])
                    else:
                        return self._reply(400, {"error": f"unsupported operation {item['key']}"})
                oid = hashlib.sha1(body).hexdigest()
                repo.record(oid, (header or {}).get("summary", ""))
                prefix = "" if kind == "models" else f"{kind}/"
                self._reply(200, {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid,
                                  "pullRequestUrl": None})

            def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

        return Handler


def _tree(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict[str, Any]]:
    """The Hub's tree listing of `folder` ("" for the root): its files and folders (all below it if recursive)."""
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict[str, Any]] = {}
    for name, data in sorted(files.items()):
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("/")
        for depth in range(1, len(parts)):
            sub = prefix + "/".join(parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(sub, {"type": "directory", "path": sub, "oid": blob_id(sub.encode())})
            if not recursive:
                break
        if recursive or len(parts) == 1:
            entries[name] = _file_entry(name, data)
    return list(entries.values())


def _paths_info(files: dict[str, bytes], paths: list[str]) -> list[dict[str, Any]]:
    """What `/paths-info` says of each path that exists (a file, or a folder holding files)."""
    found = []
    for path in paths:
        path = path.strip("/")
        if path in files:
            found.append(_file_entry(path, files[path]))
        elif any(name.startswith(f"{path}/") for name in files) or path == "":
            found.append({"type": "directory", "path": path, "oid": blob_id(path.encode())})
    return found


def _file_entry(name: str, data: bytes) -> dict[str, Any]:
    return {"type": "file", "path": name, "size": len(data), "oid": blob_id(data)}
