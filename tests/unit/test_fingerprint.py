"""Canonical encoding and code identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_fakes import dreamfile

from dreammake.fingerprint import canonical, code_hash, hash_data

pytestmark = pytest.mark.usefixtures("project_dir")  # each test in its own empty project folder


def test_canonical_is_independent_of_key_order_and_exact_for_floats() -> None:
    assert canonical({"b": 1, "a": [1.5, None, "é"]}) == '{"a":[1.5,null,"é"],"b":1}'
    assert hash_data({"a": 1, "b": 2}) == hash_data({"b": 2, "a": 1})
    assert hash_data({"a": 0.1}) != hash_data({"a": 0.1000000001})
    assert canonical({1, 3, 2}) == "[1,2,3]"
    assert canonical(float("nan")) == "nan"


def test_canonical_refuses_what_it_cannot_fingerprint() -> None:
    with pytest.raises(TypeError, match="cannot fingerprint a object"):
        canonical(object())


def fn(root: Path, source: str, name: str = "f"):
    """A function defined in a Dreamfile (project code)."""
    return dreamfile(root, source).scope[name]


BASE = '''
K = 3

def helper(x):
    return x * K

def f(x):
    """Docs."""
    return helper(x) + 1
'''


def test_code_hash_ignores_comments_formatting_and_docstrings(project_dir: Path) -> None:
    same = BASE.replace('"""Docs."""', '"""Other docs."""  # a comment').replace("helper(x) + 1", "helper( x )+1")
    assert code_hash(fn(project_dir, BASE)) == code_hash(fn(project_dir, same))


@pytest.mark.parametrize("change", [("+ 1", "+ 2"), ("K = 3", "K = 4"), ("x * K", "x * K * 1")],
                         ids=["body", "global value", "called helper"])
def test_code_hash_follows_the_body_globals_and_helpers(project_dir: Path, change: tuple[str, str]) -> None:
    assert code_hash(fn(project_dir, BASE)) != code_hash(fn(project_dir, BASE.replace(*change)))


def test_code_hash_sees_closure_values_and_defaults(project_dir: Path) -> None:
    source = '''
def make(n):
    def g(x, d=D):
        return x + n + d
    return g

f = make(N)
'''
    hashes = {code_hash(fn(project_dir, f"N = {n}\nD = {d}\n" + source)) for n, d in [(1, 1), (2, 1), (1, 2)]}
    assert len(hashes) == 3
    assert code_hash(fn(project_dir, "N = 1\nD = 1\n" + source)) in hashes


def test_installed_code_is_named_not_read() -> None:
    import json

    assert code_hash(json.dumps) == code_hash(json.dumps)
    assert code_hash(json.dumps) != code_hash(json.loads)
