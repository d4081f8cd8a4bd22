"""Code identity follows the project's own modules: an edited helper makes its rules stale, a comment does not."""

from __future__ import annotations

import subprocess
import sys

from dreammake import fingerprint

HELPERS = '''
THRESHOLD = 3


def _strip(text):
    return text.strip()


def clean(rows):
    """Drop short rows."""
    return [{"text": _strip(r["text"])} for r in rows if len(r["text"]) > THRESHOLD]
'''

DREAMFILE = """
import sys
sys.path.insert(0, "lib")
{import_line}

def build():
    return {call}([{{"text": " hello "}}, {{"text": "hi"}}])

rule("cleaned", output="t/cleaned.parquet", run=build)
"""


def _dm(project, *args: str) -> subprocess.CompletedProcess:
    """dreammake as a user runs it: a fresh process (modules are imported anew, as in every real run)."""
    return subprocess.run([sys.executable, "-m", "dreammake", *args], cwd=project.root, capture_output=True,
                          text=True)


def _setup(project, import_line: str, call: str) -> None:
    project.write("lib/helpers.py", HELPERS)
    project.dreamfile(DREAMFILE.format(import_line=import_line, call=call))
    assert _dm(project).returncode == 0
    assert _dm(project, "-q").returncode == 0


def _edit(project, old: str, new: str) -> None:
    path = project.root / "lib" / "helpers.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_edited_imported_helper_makes_the_rule_stale(project):
    _setup(project, "from helpers import clean", "clean")
    _edit(project, "if len(r[\"text\"]) > THRESHOLD]", "if len(r[\"text\"]) >= THRESHOLD]")
    plan = _dm(project, "-n")
    assert "cleaned\tt/cleaned.parquet\tcode: code changed" in plan.stdout
    assert _dm(project, "-q").returncode == 1


def test_comment_or_docstring_in_helper_is_not_a_change(project):
    _setup(project, "from helpers import clean", "clean")
    _edit(project, '    """Drop short rows."""\n', "    # drop the short rows\n")
    _edit(project, "def _strip(text):", "def _strip(text):  # a comment\n\n")
    assert _dm(project, "-q").returncode == 0
    assert "0 job(s) to run" in _dm(project, "-n").stdout


def test_helper_called_by_helper_and_module_constant(project):
    _setup(project, "from helpers import clean", "clean")
    _edit(project, "return text.strip()", "return text.strip().lower()")
    assert _dm(project, "-q").returncode == 1
    assert _dm(project).returncode == 0
    _edit(project, "THRESHOLD = 3", "THRESHOLD = 1")
    assert _dm(project, "-q").returncode == 1


def test_module_attribute_access(project):
    _setup(project, "import helpers", "helpers.clean")
    _edit(project, "return text.strip()", "return text.strip().upper()")
    assert _dm(project, "-q").returncode == 1
    assert _dm(project).returncode == 0
    assert project.read("t/cleaned.parquet") == [{"text": "HELLO"}]


def test_installed_packages_are_identified_by_version_not_source():
    import json

    def uses_json():
        return json.dumps([1])

    assert fingerprint.code_hash(json.dumps) == fingerprint.digest(f"json.dumps@{fingerprint._package_version('json')}")
    assert fingerprint.code_hash(uses_json)


def test_rules_made_in_a_loop_parse_their_shared_code_once(monkeypatch):
    calls = []
    real = fingerprint.inspect.getsource
    monkeypatch.setattr(fingerprint.inspect, "getsource", lambda obj: calls.append(obj) or real(obj))
    def make(i):
        return lambda input: [{"i": i}]

    fns = [make(i) for i in range(500)]
    hashes = {fingerprint.code_hash(f) for f in fns}
    assert len(hashes) == 500  # each closure value is part of its identity
    assert len(calls) <= 2  # the shared code objects are parsed once
