"""A local stand-in for the Hugging Face Hub: exactly the endpoints huggingface_hub 2.4 calls to
create a repo and commit files (`/api/repos/create`, `/api/validate-yaml`, `.../preupload/REV`,
`.../commit/REV`), on 127.0.0.1. Select it with HF_ENDPOINT=server.url.

Every file is accepted in "regular" (inline base64) mode, so no LFS/Xet storage is needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

_REPO_PATH = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)")


@dataclass
class Repo:
    repo_type: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class HubServer:
    """Runs the fake Hub in a thread; `repos` maps "dataset:org/name" to what was committed."""

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization header
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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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
                repo.commits.append((header or {}).get("summary", ""))
                prefix = "" if kind == "models" else f"{kind}/"
                self._reply(200, {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid,
                                  "pullRequestUrl": None})

            def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler
