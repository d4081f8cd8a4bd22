"""LLMs in a Dreamfile: `llm(spec, **defaults)` handles, backends, and the row-level request cache."""

from dreammake.llm.handle import LLM, llm

__all__ = ["LLM", "llm"]
