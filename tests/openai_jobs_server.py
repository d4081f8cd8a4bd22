"""A fake OpenAI-compatible API for the job endpoints, on 127.0.0.1 (aiohttp on its own thread): files (multipart
upload, content), fine-tuning jobs and batches that advance one status per poll (or hold at `running` while
`hold` is set), and chat completions that name the model that answered."""

from __future__ import annotations

import json
import threading
from typing import Any

from llm_servers import ThreadedServer


class JobsServer(ThreadedServer):
    """See the module docstring."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls = 0
        self.chats: list[dict[str, Any]] = []
        self.hold = threading.Event()  # while set, jobs and batches stay `running`
        super().__init__()

    def _advance(self, obj: dict[str, Any], steps: list[str]) -> None:
        i = steps.index(obj["status"])
        if i + 1 < len(steps) and not (self.hold.is_set() and steps[i + 1] == steps[-1]):
            obj["status"] = steps[i + 1]

    def routes(self, app: Any) -> None:
        from aiohttp import web

        async def upload(request: web.Request) -> web.Response:
            form = await request.post()
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = form["file"].file.read()
            return web.json_response({"id": file_id, "object": "file", "purpose": form["purpose"]})

        async def content(request: web.Request) -> web.Response:
            return web.Response(body=self.files[request.match_info["id"]])

        async def create_job(request: web.Request) -> web.Response:
            body = await request.json()
            job_id = f"ftjob-{len(self.jobs) + 1}"
            self.jobs[job_id] = {"id": job_id, "object": "fine_tuning.job", "model": body["model"],
                                 "training_file": body["training_file"], "status": "validating_files",
                                 "fine_tuned_model": None, "hyperparameters": body.get("hyperparameters")}
            return web.json_response(self.jobs[job_id])

        async def get_job(request: web.Request) -> web.Response:
            self.polls += 1
            job = self.jobs[request.match_info["id"]]
            self._advance(job, ["validating_files", "queued", "running", "succeeded"])
            if job["status"] == "succeeded":
                job["fine_tuned_model"] = f"ft:{job['model']}:acme::{job['id']}"
                job["trained_tokens"] = 123
            return web.json_response(job)

        async def create_batch(request: web.Request) -> web.Response:
            body = await request.json()
            batch_id = f"batch-{len(self.batches) + 1}"
            lines = self.files[body["input_file_id"]].decode().splitlines()
            self.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                                      "input_file_id": body["input_file_id"], "status": "validating",
                                      "output_file_id": None, "request_counts": {"total": len(lines),
                                                                                 "completed": 0, "failed": 0}}
            return web.json_response(self.batches[batch_id])

        async def get_batch(request: web.Request) -> web.Response:
            self.polls += 1
            batch = self.batches[request.match_info["id"]]
            self._advance(batch, ["validating", "in_progress", "finalizing", "completed"])
            if batch["status"] == "completed" and batch["output_file_id"] is None:
                out = []
                for line in self.files[batch["input_file_id"]].decode().splitlines():
                    item = json.loads(line)
                    out.append(json.dumps({"custom_id": item["custom_id"], "response": {"status_code": 200, "body": (
                        answer(item["body"]))}}))
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = ("\n".join(reversed(out)) + "\n").encode()
                batch["output_file_id"] = file_id
                batch["request_counts"]["completed"] = len(out)
            return web.json_response(batch)

        def answer(body: dict[str, Any]) -> dict[str, Any]:
            return {"id": "x", "object": "chat.completion", "model": body["model"], "system_fingerprint": "fp_jobs",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": f"{body['model']} says: {body['messages'][-1]['content']}"}}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}

        async def chat(request: web.Request) -> web.Response:
            body = await request.json()
            self.chats.append(body)
            return web.json_response(answer(body))

        app.router.add_post("/v1/files", upload)
        app.router.add_get("/v1/files/{id}/content", content)
        app.router.add_post("/v1/fine_tuning/jobs", create_job)
        app.router.add_get("/v1/fine_tuning/jobs/{id}", get_job)
        app.router.add_post("/v1/batches", create_batch)
        app.router.add_get("/v1/batches/{id}", get_batch)
        app.router.add_post("/v1/chat/completions", chat)
