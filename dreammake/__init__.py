"""dreammake: a make-like build tool for LLM workflows."""

__version__ = "0.1.0"
