"""GNU make integration: generated make rules, make -q/-n, depfiles, and make's jobserver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

if shutil.which("make") is None:  # GNU make is part of the base image; fail loudly rather than skip
    pytest.fail("GNU make is required for these tests")

CHAIN = """
import pyarrow.csv as pacsv
rule("raw", input="data/raw.csv", output="t/raw.parquet", run=lambda input: pacsv.read_csv(input))
rule("upper", input="t/raw.parquet", output="t/upper.parquet",
     run=lambda input: {"text": [t.upper() for t in input["text"]]})
rule("other", input="data/other.csv", output="t/other.parquet", run=lambda input: pacsv.read_csv(input))
rule("all", input=["t/upper.parquet", "t/other.parquet"])
"""


def make(project, *args: str) -> subprocess.CompletedProcess:
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    env.pop("MAKEFLAGS", None)
    return subprocess.run(["make", *args], cwd=project.root, capture_output=True, text=True, env=env)


def setup_chain(project):
    project.write("data/raw.csv", "text\nhello\n")
    project.write("data/other.csv", "text\nbye\n")
    project.dreamfile(CHAIN)
    project.write("dreammake.mk", project.run("makefile"))
    project.write("Makefile", f"DREAMMAKE := {sys.executable} -m dreammake\ninclude dreammake.mk\n")


def test_generated_makefile_with_make_q_n_and_mtimes(project):
    setup_chain(project)
    mk = (project.root / "dreammake.mk").read_text()
    assert "t/upper.parquet : t/raw.parquet $(DREAMFILE)" in mk
    assert "\t+$(DREAMMAKE) -f $(DREAMFILE) --quiet t/upper.parquet" in mk
    assert make(project, "-q", "all").returncode == 1
    dry = make(project, "-n", "all")
    assert dry.returncode == 0 and "dreammake" in dry.stdout
    assert not (project.root / "t/upper.parquet").exists(), "make -n must not build (dreammake honours MAKEFLAGS n)"
    assert make(project, "-j4", "all").returncode == 0
    assert project.read("t/upper.parquet") == [{"text": "HELLO"}]
    assert make(project, "-q", "all").returncode == 0
    before = (project.root / "t/other.parquet").stat().st_mtime_ns
    time.sleep(0.01)
    project.write("data/raw.csv", "text\nhi\n")
    assert make(project, "-q", "all").returncode == 1
    assert make(project, "all").returncode == 0
    assert project.read("t/upper.parquet") == [{"text": "HI"}]
    assert (project.root / "t/other.parquet").stat().st_mtime_ns == before, "unrelated targets are not touched"
    assert make(project, "-q", "all").returncode == 0


def test_depfile(project):
    setup_chain(project)
    project.run("--depfile", "t/upper.parquet")
    deps = (project.root / "t/upper.parquet.d").read_text()
    assert deps.startswith("t/upper.parquet: data/raw.csv Dreamfile")
    assert "\ndata/raw.csv:\n" in deps


JOBS = """
import os, time
def work(wildcards):
    mark = f"running/{wildcards['i']}"
    open(mark, "w").close()
    time.sleep(0.6)
    now = len(os.listdir("running"))
    os.remove(mark)
    return [{"concurrent": now}]
rule("work", output="t/{i}.parquet", run=work)
rule("all", input=expand("t/{i}.parquet", i=range(6)))
"""


@pytest.mark.parametrize("slots", [2, 3])
def test_jobserver_limit_is_respected(project, slots):
    project.dreamfile(JOBS)
    (project.root / "running").mkdir()
    project.write("Makefile", f"all:\n\t+{sys.executable} -m dreammake -j 8 all\n")
    result = make(project, f"-j{slots}")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = [project.read(f"t/{i}.parquet")[0]["concurrent"] for i in range(6)]
    assert max(seen) == slots, seen


def test_without_make_the_j_flag_rules(project):
    project.dreamfile(JOBS)
    (project.root / "running").mkdir()
    project.run("-j", "4")
    seen = [project.read(f"t/{i}.parquet")[0]["concurrent"] for i in range(6)]
    assert max(seen) == 4, seen


def test_jobserver_fifo_form(project, tmp_path):
    """make 4.4 passes `--jobserver-auth=fifo:PATH`; emulate it with a fifo holding 1 token (2 slots in all)."""
    project.dreamfile(JOBS)
    (project.root / "running").mkdir()
    fifo = tmp_path / "jobserver.fifo"
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # holds the fifo open, like make does
    os.write(keep, b"+")
    proc = project.spawn("-j", "8", env=dict(os.environ, MAKEFLAGS=f" -j2 --jobserver-auth=fifo:{fifo}"))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    seen = [project.read(f"t/{i}.parquet")[0]["concurrent"] for i in range(6)]
    assert max(seen) == 2, seen
    assert os.read(keep, 8) == b"+", "the token is given back"
    os.close(keep)
