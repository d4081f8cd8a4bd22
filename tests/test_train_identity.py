"""What enters a training rule's fingerprint, checked at load and plan time (nothing trains here):
the global batch, the resolved dtype, and unknown options rejected when the Dreamfile loads."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from train_fixtures import write_parquet

import dreammake.rules.train as train_pkg
from dreammake.rules.train.spec import DEFAULTS, KIND_OPTIONS, Spec, valid_options
from dreammake.rules.train.worker import KIND_MODULES

CLASSIFIER = """
rule("model", input={{"train": "train.parquet"}}, output="models/m/",
     run=rules.train_classifier(base={base!r}, {options}),
     resources={resources})
"""


def fingerprint(project, base: str, options: str, resources: dict) -> tuple[str, dict[str, str]]:
    """`dreammake fingerprint model --json` for a classifier rule: (fingerprint, components)."""
    if not (project.root / "train.parquet").exists():
        write_parquet(project.root / "train.parquet", [{"text": "good", "label": "pos"}])
    project.dreamfile(CLASSIFIER.format(base=base, options=options, resources=resources))
    out = json.loads(project.run("fingerprint", "model", "--json"))
    node = next(n for n in out["nodes"] if n["job"] == "model")
    return out["fingerprints"]["model"], node["components"]


def test_global_batch_size_makes_the_fingerprint_process_invariant(project, minilm):
    one = fingerprint(project, minilm, "batch_size=8", {"processes": 1})[0]
    assert fingerprint(project, minilm, "batch_size=8", {"processes": 2})[0] == one
    assert fingerprint(project, minilm, "batch_size=8", {"processes": 8})[0] == one
    assert fingerprint(project, minilm, "batch_size=16", {"processes": 2})[0] != one
    # a batch that does not split over the processes is refused at load, naming the rule, its line and the rule
    project.dreamfile(CLASSIFIER.format(base=minilm, options="batch_size=8, gradient_accumulation=2",
                                        resources={"processes": 3}))
    out = project.run("-n", code=2)
    assert "Dreamfile:2: rule 'model': batch_size=8 is the global batch and must be a multiple of processes ×" \
           " gradient_accumulation = 3 × 2" in out
    assert "batch_size / (processes × gradient_accumulation)" in out


@pytest.mark.parametrize("accumulation", [1, 2])
def test_every_process_count_trains_the_same_global_batch(tmp_path, accumulation):
    """The trainer arguments the workers build: per-device batch × processes × accumulation = batch_size."""
    from dreammake.rules.train.common import training_kwargs

    seen = set()
    for processes in (1, 2, 4):
        spec = Spec("sft", {"batch_size": 8, "gradient_accumulation": accumulation}, {}, str(tmp_path),
                    str(tmp_path), processes=processes)
        kw = training_kwargs(spec, has_eval=False, kind="sft")
        assert kw["gradient_accumulation_steps"] == accumulation
        seen.add(kw["per_device_train_batch_size"] * processes * kw["gradient_accumulation_steps"])
    assert seen == {8}


def test_resolved_dtype_enters_the_identity(project, minilm):
    cpu_auto, cpu_parts = fingerprint(project, minilm, "dtype='auto'", {})
    gpu_auto, gpu_parts = fingerprint(project, minilm, "dtype='auto'", {"gpus": 1})
    assert cpu_auto != gpu_auto
    assert [k for k in cpu_parts if cpu_parts[k] != gpu_parts[k]] == ["params", "params.dtype"]
    # what enters is the dtype trained in, however it is spelled
    assert fingerprint(project, minilm, "dtype='fp32'", {})[0] == cpu_auto
    assert fingerprint(project, minilm, "", {})[0] == cpu_auto  # no dtype: auto
    assert fingerprint(project, minilm, "dtype='bfloat16'", {"gpus": 1})[0] == gpu_auto
    assert fingerprint(project, minilm, "dtype='bf16'", {})[0] != cpu_auto
    project.dreamfile(CLASSIFIER.format(base=minilm, options="dtype='fp8'", resources={}))
    assert "Dreamfile:3: ValueError: unknown dtype 'fp8' (use auto, bf16, fp16 or fp32)" in project.run("-n", code=2)


def test_one_action_cannot_train_two_rules_in_different_dtypes(project, minilm):
    project.dreamfile(f"""
clf = rules.train_classifier(base={minilm!r})
rule("cpu", input={{"train": "train.parquet"}}, output="models/cpu/", run=clf)
rule("gpu", input={{"train": "train.parquet"}}, output="models/gpu/", run=clf, resources={{"gpus": 1}})
""")
    out = project.run("-n", code=2)
    assert "Dreamfile:4: rule 'gpu': this rules.train_classifier() is also the action of rule 'cpu', which trains" \
           " in float32; give each rule its own" in out


TYPOS = [
    ("sft", "epoch=1", "epochs"),
    ("dpo", "betta=0.1", "beta"),
    ("reward", "margin_col='m'", "margin_column"),
    ("grpo", "num_generation=4", "num_generations"),
    ("classifier", "label_colum='y'", "label_column"),
    ("embedding", "los='mnrl'", "loss"),
]


@pytest.mark.parametrize(("kind", "typo", "meant"), TYPOS, ids=[t[0] for t in TYPOS])
def test_unknown_option_fails_at_load_with_the_closest_name(project, kind, typo, meant):
    project.dreamfile(f"""
rows = [{{"text": "hello"}}]
rule("data", output="train.parquet", run=lambda: rows)
rule("model", input={{"train": "train.parquet"}}, output="models/m/",
     run=rules.train_{kind}(base="smollm2-135m-instruct", max_steps=1, {typo}))
""")
    out = project.run(code=2)
    name = typo.split("=")[0]
    assert f"Dreamfile:5: TypeError: rules.train_{kind}() got an unknown option {name!r} (did you mean {meant}?)" \
           in out
    assert len(out.strip().splitlines()) == 1, out
    assert not (project.root / "train.parquet").exists() and not (project.root / "models").exists()


def test_an_option_of_another_kind_is_unknown(project):
    project.dreamfile('rule("m", output="models/m/", run=rules.train_classifier(base="x", num_generations=4))\n')
    assert "rules.train_classifier() got an unknown option 'num_generations'" in project.run("-n", code=2)


def _names_read(path: Path) -> set[str]:
    """Option names a module reads: spec.opt("X"), [spec.]options.get("X"), [spec.]options["X"] and
    pick_column(_, spec, "X")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args:
            call = ast.unparse(node.func)
            if call in ("spec.opt", "self.opt", "spec.options.get", "options.get"):
                names.add(node.args[0])
            elif call == "pick_column" and len(node.args) > 2:
                names.add(node.args[2])
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("spec.options", "options"):
            names.add(node.slice)
    return {n.value for n in names if isinstance(n, ast.Constant)} - {"base"}  # base is the action's own


def test_valid_options_are_exactly_what_the_workers_read():
    """Each kind accepts what its worker code reads (and the launcher, for reward_fn), and reads all it accepts."""
    folder = Path(train_pkg.__file__).parent
    shared = {name for f in ("common.py", "runner.py", "spec.py", "quantize.py") for name in _names_read(folder / f)}
    launcher = _names_read(folder / "api.py")
    assert shared <= set(DEFAULTS), shared - set(DEFAULTS)
    assert launcher <= set().union(*(valid_options(k) for k in KIND_OPTIONS)), launcher
    everywhere = set(shared)
    for module in sorted(set(KIND_MODULES.values())):
        kinds = [k for k, m in KIND_MODULES.items() if m == module]
        read = _names_read(folder / f"{module}.py")
        everywhere |= read
        accepted = set().union(*(valid_options(k) for k in kinds))
        assert read <= accepted, (module, read - accepted)
        for kind in kinds:
            assert set(KIND_OPTIONS[kind]) <= read | launcher, (kind, set(KIND_OPTIONS[kind]) - read - launcher)
    assert set(DEFAULTS) <= everywhere, set(DEFAULTS) - everywhere
