"""Unit tests of the engine core: in-memory fakes, each test in its own empty project folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder: Dreamfile outputs must lie inside the current folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
