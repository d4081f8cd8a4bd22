"""A model that answers at once, for benchmarks that measure dreammake rather than a model.

Bench Dreamfiles pull it in with `include("<absolute path of this file>")` and use `llm(Instant())`.
"""

from dreammake.llm.base import Response


class Instant:
    """Answers each prompt with its reversed text (only the last `keep` characters, when given)."""

    name = "instant"

    def __init__(self, keep: int | None = None):
        self.keep = keep

    def identity(self) -> dict:
        return {"backend": "instant"}

    def generate(self, requests, on_result, cancel) -> None:
        for i, r in enumerate(requests):
            text = r.messages[-1]["content"]
            if self.keep is not None:
                text = text[-self.keep:]
            on_result(i, Response(text=text[::-1], finish_reason="stop"))

    def close(self) -> None:
        pass


class LocalInstant(Instant):
    """`Instant` as a local model (`local = True`), so `shards=` sends it to worker processes; `delay` seconds per
    row stand in for a model's compute (a worker's share of the rows costs its share of the time)."""

    def __init__(self, keep: int | None = None, delay: float = 0.0):
        super().__init__(keep)
        self.delay = delay

    local = True

    def identity(self) -> dict:
        return {"backend": "local-instant", "delay": self.delay}

    def generate(self, requests, on_result, cancel) -> None:
        import time

        for i, r in enumerate(requests):
            if self.delay:
                time.sleep(self.delay)
            on_result(i, Response(text=r.messages[-1]["content"][::-1], finish_reason="stop"))
