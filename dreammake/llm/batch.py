"""Batch generation: `llm("openai/NAME", batch=True)` sends a prompt rule's misses as one batch job of the
provider's batch API (JSONL upload, `/batches`, polling, the output file), at the batch price.

The rows still go through the row cache: only misses are sent, and each answer is spooled and cached as the
output file is read. The batch's ids are kept in `.dreammake/batches/<xxh3 of the request file>.json` as soon as
they exist, so a killed dreammake that is run again (the same misses make the same file) reattaches to the batch
instead of paying for a second one; the file goes once the answers are in.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from .base import LLMError, Request
from .openai_jobs import JobsClient, Ledger, wait
from .util import api_key_from

if TYPE_CHECKING:
    from .openai_http import OpenAIHTTPBackend

ENDPOINT = "/v1/chat/completions"
LEDGER_DIR = os.path.join(".dreammake", "batches")  # under the project root (dreammake's working directory)


def request_file(backend: OpenAIHTTPBackend, requests: list[Request]) -> bytes:
    """The batch input: one JSON line per request, its index as `custom_id`."""
    return "".join(json.dumps({"custom_id": str(i), "method": "POST", "url": ENDPOINT,
                               "body": backend.payload(req)}, sort_keys=True) + "\n"
                   for i, req in enumerate(requests)).encode()


def run_batch(backend: OpenAIHTTPBackend, requests: list[Request], on_result: Any, cancel: threading.Event) -> None:
    """Generate `requests` as one batch job, calling `on_result(i, response)` for each answer in the output file.
    Failed lines are left out (the caller reports rows with no result); a batch that fails is an LLMError."""
    import xxhash

    if not requests:
        return
    content = request_file(backend, requests)
    digest = xxhash.xxh3_128_hexdigest(backend.api_base.encode() + b"\0" + content)
    ledger = Ledger(os.path.join(LEDGER_DIR, f"{digest}.json"))
    client = JobsClient(backend.api_base, api_key_from(backend._given_key, backend.api_key_env),
                        f"{backend.model} batch")
    batch_id = ledger.get("batch_id")
    if batch_id is None:
        file_id = ledger.get("input_file_id")
        if file_id is None:
            file_id = client.upload(f"dreammake-{digest[:12]}.jsonl", content, "batch")
            ledger.set(input_file_id=file_id)
        batch_id = client.call("POST", "/batches", {"input_file_id": file_id, "endpoint": ENDPOINT,
                                                    "completion_window": "24h"})["id"]
        ledger.set(batch_id=batch_id)
        backend._say(f"{backend.model}: batch {batch_id} created for {len(requests)} request(s)")
    else:
        backend._say(f"{backend.model}: reattached to batch {batch_id}")
    batch = wait(lambda: client.call("GET", f"/batches/{batch_id}"), cancel, backend.batch_poll_s,
                 lambda status: backend._say(f"{backend.model}: batch {batch_id}: {status}"))
    if batch.get("status") != "completed" or not batch.get("output_file_id"):
        raise LLMError(f"{backend.model}: batch {batch_id} ended {batch.get('status')}")
    output = client.call("GET", f"/files/{batch['output_file_id']}/content", raw=True)
    for line in output.decode().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        response = item.get("response") or {}
        if response.get("status_code") != 200:
            continue
        try:
            on_result(int(item["custom_id"]), backend.response_of(response["body"], 0.0, batch=True))
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # a malformed line: its row has no result, which the caller reports
    os.unlink(ledger.path)
