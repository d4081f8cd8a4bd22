"""The layer contract of the package, read from the source with `ast` (nothing is imported).

Layers, top to bottom; a module may import modules of its own group and of lower layers, never upwards, and
never a sibling group of its own layer (`run` and `cards` describe and execute jobs independently):

    cli       the command line (click) and the executable's entry
    project   the phases of a run strung together
    run|cards executing jobs (runner, executors, Slurm, make) | describing them (cards, reports, drawing, show,
              preview: a prompt rule's first rows with their messages)
    kinds     the built-in rule kinds (`dreammake.rules.*`; the package itself is the kinds seam, in core)
    core      the engine: the Dreamfile language, actions, graph, planner, state
    llm       model handles, backends, the row cache: they know nothing of the engine that runs them
    leaf      small modules every layer shares

So `llm/` never imports the planner, runner, executors or CLI, and `rules/` never imports the CLI, project or
executors. Every import counts (inside functions too), except under `if TYPE_CHECKING:`, as in
`import_cycles.py`; an import of an enclosing package (`from dreammake import __version__`) is no edge.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dreammake"

LAYERS: tuple[dict[str, tuple[str, ...]], ...] = (  # top first; each layer: group name -> module patterns
    {"cli": ("__main__", "entry", "cli", "cli_*")},
    {"project": ("project",)},
    {"run": ("runner", "executor", "executors", "slurm", "worker", "gen_worker", "shard_workers", "makeint"),
     "cards": ("cards", "cards.*", "publish", "report", "drawing", "show", "preview")},
    {"kinds": ("rules.*",)},
    {"core": ("actions", "adopt", "confine", "dsl", "filehash", "graph", "planner", "state", "rules")},
    {"llm": ("llm", "llm.*", "hub")},
    {"leaf": ("errors", "suggest", "refs", "gpus", "paths", "fingerprint", "console", "content", "targets", "known",
              "hfcache", "config_env", "jsonfiles", "tables", "dbfiles", "plugins", "templates", "uptodate")},
)
# modules that must import nothing but the standard library: the no-op check runs before anything else loads,
# and the spool format is read by workers on other nodes
STANDALONE = ("uptodate", "llm.spool")


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Module name (without the `dreammake.` prefix; "" for the package) -> source file."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(the package's modules that module `name` imports, the top-level names of the others it imports)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
               for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["dreammake", *filter(None, package.split("."))]
                module = ".".join(base[:len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    inside, outside = set(), set()
    for target in targets:
        if target != "dreammake" and not target.startswith("dreammake."):
            outside.add(target.partition(".")[0])
            continue
        inner = target.removeprefix("dreammake").removeprefix(".")
        while inner and inner not in known:
            inner = inner.rpartition(".")[0]
        if inner and inner != name and not name.startswith(inner + "."):  # an enclosing package is no edge
            inside.add(inner)
    return inside, outside


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    known = modules(root)
    return {name: imported(name, path, known)[0] for name, path in known.items()}


def place(module: str) -> tuple[int, str] | None:
    """(layer index, group) of a module, or None when no layer names it."""
    for index, layer in enumerate(LAYERS):
        for group, patterns in layer.items():
            if any(fnmatch.fnmatchcase(module, p) for p in patterns):
                return index, group
    return None


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Each import that goes up a layer or across to a sibling group, as 'a (layer) imports b (layer)'."""
    found = []
    for module, targets in sorted(graph.items()):
        if not module:
            continue
        here = place(module)
        for target in sorted(targets):
            there = place(target)
            if here is None or there is None:
                continue  # reported by test_every_module_has_a_layer
            if there[0] < here[0] or (there[0] == here[0] and there[1] != here[1]):
                found.append(f"dreammake.{module} ({here[1]}) imports dreammake.{target} ({there[1]})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [f"dreammake.{m}" for m in import_graph() if m and place(m) is None]
    assert not unplaced, f"add these modules to a layer in tests/test_layers.py: {', '.join(unplaced)}"


def test_no_module_imports_a_higher_layer_or_a_sibling_group() -> None:
    found = violations(import_graph())
    assert not found, "layer contract broken:\n" + "\n".join(found)


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(f"cycle of {len(c)}: {', '.join(c)}" for c in found)


@pytest.mark.parametrize("module", STANDALONE)
def test_standalone_modules_import_only_the_standard_library(module: str) -> None:
    known = modules()
    inside, outside = imported(module, known[module], known)
    outside -= set(sys.stdlib_module_names)
    assert not inside and not outside, f"dreammake.{module} imports {sorted(inside) + sorted(outside)}"


def test_the_contract_catches_back_imports_and_cycles(tmp_path: Path) -> None:
    """A back-import planted in a copy of the package is found, and so is the cycle it closes."""
    import shutil

    copy = tmp_path / "dreammake"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    paths = copy / "paths.py"
    paths.write_text(paths.read_text() + "\n\ndef _planted() -> None:\n    import dreammake.cli  # noqa: F401\n")
    graph = import_graph(copy)
    assert "dreammake.paths (leaf) imports dreammake.cli (cli)" in violations(graph)
    assert any("paths" in c and "cli" in c for c in cycles(graph))
    llm = copy / "llm" / "spool.py"
    llm.write_text(llm.read_text() + "\nfrom dreammake.planner import Planner  # noqa: E402,F401\n")
    assert "dreammake.llm.spool (llm) imports dreammake.planner (core)" in violations(import_graph(copy))
