"""`llm("shout:NAME", suffix="!")`: a backend that answers each prompt in capitals (instant, offline)."""

from __future__ import annotations

import threading
from typing import Any

from dreammake.llm.base import OnResult, Request, Response


class ShoutBackend:
    """Answers with the last message upper-cased plus `suffix`. Its options are its keyword parameters:
    `llm("shout:x", sufix="!")` is refused with "did you mean suffix"."""

    def __init__(self, model: str, suffix: str = "!"):
        self.model = model
        self.suffix = suffix

    def identity(self) -> dict[str, Any]:
        return {"backend": "shout", "model": self.model, "suffix": self.suffix}

    def generate(self, requests: list[Request], on_result: OnResult, cancel: threading.Event) -> None:
        for i, request in enumerate(requests):
            if cancel.is_set():
                return
            text = request.messages[-1]["content"]
            on_result(i, Response(text=text.upper() + self.suffix, finish_reason="stop",
                                  prompt_tokens=len(text.split()), completion_tokens=len(text.split())))

    def close(self) -> None:
        pass
