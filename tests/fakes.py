"""An instant in-process LLM backend for engine tests (a test double; real backends have their own tests)."""

from __future__ import annotations

import os
import time

from dreammake.llm.base import Response


class EchoBackend:
    """Answers each request with its last message reversed; logs every call to `log_path`."""

    name = "echo"

    def __init__(self, log_path: str = "calls.log", delay: float = 0.0, cost: float = 0.001, version: int = 1,
                 reply=None):
        self.reply = reply or (lambda text: text[::-1])
        self.log_path = log_path
        self.delay = delay
        self.cost = cost
        self.version = version

    def identity(self) -> dict:
        return {"backend": "echo", "version": self.version}

    def generate(self, requests, on_result, cancel) -> None:
        with open(self.log_path, "a") as log:
            for i, request in enumerate(requests):
                if cancel.is_set():
                    return
                if self.delay:
                    time.sleep(self.delay)
                text = request.messages[-1]["content"]
                log.write(self.log_line(text) + "\n")
                log.flush()
                on_result(i, self.response(text))

    def log_line(self, text: str) -> str:
        """What the call log says of one request."""
        return text.replace("\n", " ")

    def response(self, text: str) -> Response:
        """The answer to a request whose last message is `text`."""
        return Response(text=self.reply(text), finish_reason="stop", prompt_tokens=len(text.split()),
                        completion_tokens=len(text.split()), cost_usd=self.cost)

    def close(self) -> None:
        pass


def calls(root) -> list[str]:
    path = os.path.join(root, "calls.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


class LocalEcho(EchoBackend):
    """EchoBackend as a local model (`local = True`, like transformers or vLLM), so its generation can go to
    worker processes. It answers the last word of each request reversed, and logs each call to `log_path` as
    `pid<TAB>CUDA_VISIBLE_DEVICES<TAB>last word`."""

    local = True

    def __init__(self, log_path: str = "local-calls.log", delay: float = 0.0, reply=None):
        super().__init__(log_path, delay, cost=0.0, reply=reply or (lambda text: text.split()[-1][::-1]))

    def identity(self) -> dict:
        return {"backend": "local-echo"}

    def log_line(self, text: str) -> str:
        return f"{os.getpid()}\t{os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\t{text.split()[-1]}"

    def response(self, text: str) -> Response:
        return Response(text=self.reply(text), finish_reason="stop")


def local_calls(root) -> list[tuple[str, str, str]]:
    """LocalEcho's calls: (pid, CUDA_VISIBLE_DEVICES, text) each."""
    path = os.path.join(root, "local-calls.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(line.split("\t", 2)) for line in f.read().splitlines()]
