"""The up-to-date record answers a no-op check without executing the Dreamfile, and never when anything the
check depended on moved: the Dreamfile, an imported helper, an environment variable it read, an input, an
output, a file inside a folder target, the options."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

DREAMFILE = """
import os
import sys
sys.path.insert(0, "lib")
from helpers import scale
print("EVALUATED", file=sys.stderr)
FACTOR = int(os.environ.get("FACTOR", "2"))

def model(output):
    os.makedirs(output, exist_ok=True)
    open(os.path.join(output, "weights.bin"), "w").write("w")

rule("scaled", input="src/x.parquet", output="t/scaled.parquet", run=lambda input: scale(input, FACTOR))
rule("model", output="models/m/", run=model)
rule("all", input=["t/scaled.parquet", "models/m/"])
"""

HELPERS = """
def scale(table, factor):
    return {"x": [v * factor for v in table["x"]]}
"""


def _dm(project, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dreammake", *args], cwd=project.root, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


@pytest.fixture
def built(project):
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(project.root / "src")
    pq.write_table(pa.table({"x": [1, 2]}), project.root / "src" / "x.parquet")
    project.write("lib/helpers.py", HELPERS)
    project.dreamfile(DREAMFILE)
    assert _dm(project).returncode == 0
    first = _dm(project, "-n")  # the full check: it writes the record
    assert "EVALUATED" in first.stderr and first.stdout == "0 job(s) to run, 2 up to date\n"
    assert (project.root / ".dreammake" / "uptodate.marshal").exists()
    return project


def _quick(project, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A command that must be answered from the record (the Dreamfile is not executed)."""
    out = _dm(project, *args, env=env)
    assert "EVALUATED" not in out.stderr, out.stderr
    return out


def test_a_no_op_check_is_answered_without_the_dreamfile(built):
    out = _quick(built, "-n")
    assert out.returncode == 0 and out.stdout == "0 job(s) to run, 2 up to date\n"
    assert _quick(built, "-q").returncode == 0
    out = _dm(built, "all")  # another target list: its own full check first
    assert "EVALUATED" in out.stderr and "everything is up to date" in out.stderr
    out = _quick(built, "all")
    assert out.returncode == 0 and out.stderr == "everything is up to date\n"
    full = _dm(built, "-n", env={"DREAMMAKE_NO_RECORD": "1"})
    assert "EVALUATED" in full.stderr and full.stdout == _quick(built, "-n").stdout


def _stale_after(project, change) -> subprocess.CompletedProcess:
    change()
    out = _dm(project, "-n")
    assert "EVALUATED" in out.stderr  # the record did not answer
    return out


def test_an_edited_dreamfile_is_seen(built):
    path = built.root / "Dreamfile"
    out = _stale_after(built, lambda: path.write_text(path.read_text().replace("2", "3")))
    assert "scaled\tt/scaled.parquet\tcode" in out.stdout


def test_an_edited_helper_module_is_seen(built):
    path = built.root / "lib" / "helpers.py"
    out = _stale_after(built, lambda: path.write_text(HELPERS.replace("v * factor", "v * factor + 1")))
    assert "scaled\tt/scaled.parquet\tcode" in out.stdout


def test_an_environment_variable_the_dreamfile_read_is_seen(built):
    out = _dm(built, "-n", env={"FACTOR": "5"})
    assert "EVALUATED" in out.stderr and "scaled\tt/scaled.parquet\tcode" in out.stdout
    assert _dm(built, "-n", env={"UNRELATED": "1"}).stderr == ""  # a variable it never read changes nothing


def test_changed_inputs_and_outputs_are_seen(built):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = _stale_after(built, lambda: pq.write_table(pa.table({"x": [9]}), built.root / "src" / "x.parquet"))
    assert "scaled\tt/scaled.parquet\tinput" in out.stdout
    assert _dm(built).returncode == 0 and _dm(built, "-n").returncode == 0
    out = _stale_after(built, lambda: (built.root / "models" / "m" / "extra.txt").write_text("hand-made"))
    assert "model\tmodels/m\tmodified" in out.stdout
    assert _dm(built).returncode == 0 and _dm(built, "-n").returncode == 0
    out = _stale_after(built, lambda: os.remove(built.root / "t" / "scaled.parquet"))
    assert "missing" in out.stdout


def test_other_options_and_commands_take_the_full_path(built):
    assert "EVALUATED" in _dm(built, "-n", "--config", "x=1").stderr
    assert "EVALUATED" in _dm(built, "-n", "--force", "t/scaled.parquet").stderr
    out = _dm(built, "status")
    assert out.returncode == 0 and "EVALUATED" in out.stderr


def test_a_held_lock_takes_the_full_path(built, monkeypatch):
    import fcntl

    from dreammake.uptodate import quick_check

    monkeypatch.chdir(built.root)
    assert quick_check(["-q"]) == 0
    fd = os.open(".dreammake/lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert quick_check(["-q"]) is None
    finally:
        os.close(fd)
