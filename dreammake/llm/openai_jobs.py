"""A small synchronous client for the OpenAI-compatible job APIs: files (upload, content), fine-tuning jobs and
batches. Used by `rules.train_openai_finetune` and batch generation (`llm(..., batch=True)`); a job's few calls
need no concurrency. 429/5xx and connection errors are retried a few times with backoff; other errors are one
`LLMError` line without the key.

Both callers keep the id of what they created in a small JSON file before they wait on it (`Ledger`), so a
killed dreammake reattaches to the same fine-tuning job or batch instead of paying for a second one.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from .base import LLMError
from .util import public_url, scrub

RETRIES = 4
FINAL = {"succeeded", "completed", "failed", "cancelled", "expired"}  # fine-tuning and batch end states


class JobsClient:
    """Calls under `api_base` (…/v1) with a bearer key (never written anywhere)."""

    def __init__(self, api_base: str, api_key: str | None, what: str):
        self.api_base, self._key, self.what = api_base.rstrip("/"), api_key, what

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, raw: bool = False) -> Any:
        """JSON in and out (or the raw bytes with `raw`)."""
        data = json.dumps(body).encode() if body is not None else None
        return self._send(method, path, data, {"Content-Type": "application/json"} if data else {}, raw)

    def upload(self, name: str, content: bytes, purpose: str) -> str:
        """POST /files (multipart): the new file's id."""
        boundary = uuid.uuid4().hex
        parts = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
                 f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/jsonl\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        reply = self._send("POST", "/files", parts, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return str(reply["id"])

    def _send(self, method: str, path: str, data: bytes | None, headers: dict[str, str], raw: bool = False) -> Any:
        url = self.api_base + path
        if self._key:
            headers = {**headers, "Authorization": f"Bearer {self._key}"}
        for attempt in range(RETRIES + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=60) as resp:
                    body = resp.read()
                    return body if raw else json.loads(body)
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")[:300]
                if exc.code not in (429, 500, 502, 503, 504) or attempt == RETRIES:
                    raise LLMError(scrub(f"{self.what}: HTTP {exc.code} from {public_url(url)}: {text}",
                                         [self._key])) from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                if attempt == RETRIES:
                    raise LLMError(scrub(f"{self.what}: {type(exc).__name__} from {public_url(url)}: {exc}",
                                         [self._key])) from None
            time.sleep(min(30.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")


class Ledger:
    """A JSON file of the ids a job created (written atomically after each creation)."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path) as f:
                self.data: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            self.data = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, **values: Any) -> None:
        self.data.update(values)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)


def wait(fetch: Any, cancel: Any, poll_s: float, say: Any) -> dict[str, Any]:
    """Poll `fetch()` (a job or batch object) every `poll_s` seconds until its status is final, saying each new
    status (with the batch's request counts, when given) through `say`. Cancelling stops waiting (the remote job
    goes on, and the next run reattaches)."""
    last = None
    while True:
        job = fetch()
        status = job.get("status")
        counts = job.get("request_counts") or {}
        shown = f"{status}" + (f" ({counts.get('completed', 0)}/{counts.get('total', 0)} requests)" if counts else "")
        if shown != last:
            say(shown)
            last = shown
        if status in FINAL:
            return job
        if cancel.wait(poll_s):
            raise LLMError("interrupted while waiting; the next run reattaches to the same remote job")
