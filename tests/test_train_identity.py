"""What enters a training rule's fingerprint, checked at load and plan time (nothing trains here):
the global batch and the resolved dtype."""

from __future__ import annotations

import json

import pytest
from train_fixtures import write_parquet

from dreammake.rules.train.spec import Spec

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
    assert [k for k in cpu_parts if cpu_parts[k] != gpu_parts[k]] == ["params"]
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

