"""Shared helpers: a project folder with a Dreamfile, and running the CLI in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from llm_servers import (  # noqa: E402,F401  (fixtures shared by the LLM and trainer tests)
    ALIAS,
    dm_cache,
    fault_server,
    smol_backend,
    smol_checkpoint,
    transformers_server,
)
from train_fixtures import minilm, smollm2, tiny_t5  # noqa: E402,F401


class Project:
    """A temporary project folder; `run(...)` invokes dreammake in it."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def dreamfile(self, text: str) -> Path:
        return self.write("Dreamfile", text)

    def run(self, *args: str, code: int | None = 0) -> str:
        """Run the CLI in-process; checks the exit code unless `code` is None. Returns stdout+stderr."""
        from dreammake.cli import main

        old = os.getcwd()
        os.chdir(self.root)
        try:
            result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        finally:
            os.chdir(old)
        if code is not None:
            assert result.exit_code == code, f"exit {result.exit_code} != {code}\n{result.output}"
        return result.output

    def spawn(self, *args: str, **kwargs) -> subprocess.Popen:
        """Run dreammake as a separate process."""
        return subprocess.Popen([sys.executable, "-m", "dreammake", *args], cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)

    def plan(self, *args: str) -> dict[str, str]:
        """`dreammake -n` as {job: reason}."""
        out = self.run("-n", *args)
        plan = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                plan[parts[0]] = parts[2].split(":", 1)[0]
        return plan

    def read(self, path: str) -> list[dict]:
        import pyarrow.parquet as pq

        return pq.read_table(self.root / path).to_pylist()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder (the engine unit tests): Dreamfile outputs must lie inside the current folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
