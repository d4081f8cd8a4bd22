"""Models larger than one GPU: `strategy="fsdp"`, `quantization="4bit"` (QLoRA), the GPUs a job was assigned, and
multi-node training under Slurm. Nothing here needs a GPU: on CPU the errors are checked, and what the trainers
would be given (TrainingArguments, the bitsandbytes config, the worker environment, the srun/torchrun command)."""

from __future__ import annotations

import os
import shlex
import stat

import pytest
from test_train_identity import fingerprint
from train_fixtures import write_parquet

from dreammake.rules.train.spec import QUANTIZATIONS, Spec

SFT = """
rows = [{{"input": "Say the word", "output": "banana"}}] * 4
rule("data", output="train.parquet", run=lambda: rows)
rule("model", input={{"train": "train.parquet"}}, output="models/m/",
     run=rules.train_sft(base="smollm2-135m-instruct", max_steps=1, batch_size=4, {options}),
     resources={resources})
"""


def error_line(project, options: str, resources: dict, *args: str) -> str:
    """The one line `dreammake -n` (or `args`) fails with for an SFT rule."""
    project.dreamfile(SFT.format(options=options, resources=resources))
    out = project.run(*(args or ("-n",)), code=2)
    assert len(out.strip().splitlines()) == 1, out
    return out.strip()


# --------------------------------------------------------------------------- strategy


def test_a_mistyped_strategy_fails_at_load_with_the_closest_name(project):
    out = error_line(project, "strategy='fdsp'", {"gpus": 2})
    assert out.endswith("Dreamfile:5: ValueError: unknown strategy 'fdsp' (did you mean fsdp?) (use ddp or fsdp)")


def test_fsdp_without_gpus_is_one_line_naming_what_it_needs(project):
    """accelerate enables FSDP only on GPUs (on CPU it silently trains with DDP), so a CPU rule is refused."""
    out = error_line(project, "strategy='fsdp'", {"processes": 2})
    assert "Dreamfile:4: rule 'model': strategy='fsdp' shards the model over GPUs: it needs resources={'gpus': N}" \
           " with N × nodes ≥ 2" in out
    assert "strategy='fsdp' shards" in error_line(project, "strategy='fsdp'", {"gpus": 1})  # one GPU: nothing to shard
    assert "drop merge=True" in error_line(project, "strategy='fsdp', lora={'r': 8}, merge=True", {"gpus": 2})


def test_the_strategy_is_no_part_of_the_fingerprint(project, minilm):
    ddp = fingerprint(project, minilm, "batch_size=8", {"gpus": 2})[0]
    assert fingerprint(project, minilm, "batch_size=8, strategy='ddp'", {"gpus": 2})[0] == ddp
    assert fingerprint(project, minilm, "batch_size=8, strategy='fsdp'", {"gpus": 2})[0] == ddp
    assert fingerprint(project, minilm, "batch_size=8, strategy='fsdp'", {"nodes": 2, "gpus": 4})[0] == ddp


def test_fsdp_training_arguments(tmp_path):
    """What TrainingArguments receive for strategy='fsdp' and what transformers makes of it (accelerate's plugin)."""
    from transformers import TrainingArguments

    from dreammake.rules.train.common import training_kwargs

    spec = Spec("sft", {"strategy": "fsdp", "dtype": "fp32", "batch_size": 8, "gradient_checkpointing": True},
                {}, str(tmp_path), str(tmp_path), processes=4, gpus=2, nodes=2)
    kw = training_kwargs(spec, has_eval=False, kind="sft")
    assert kw["fsdp"] is True and kw["gradient_checkpointing"] is False
    assert kw["fsdp_config"] == {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                 "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT",
                                 "activation_checkpointing": True}
    assert kw["per_device_train_batch_size"] == 2  # the global batch over nodes × gpus = 4 processes
    plugin = TrainingArguments(**kw).fsdp_plugin_args
    assert plugin["fsdp_version"] == 2 and plugin["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert plugin["state_dict_type"] == "FULL_STATE_DICT" and plugin["activation_checkpointing"] is True
    ddp = training_kwargs(Spec("sft", {}, {}, str(tmp_path), str(tmp_path)), has_eval=False, kind="sft")
    assert "fsdp" not in ddp and TrainingArguments(**ddp).fsdp_plugin_args is None


def test_a_worker_refuses_to_train_unsharded_when_fsdp_was_asked_for(tmp_path):
    from types import SimpleNamespace

    from dreammake.rules.train.common import check_strategy, strategy_note

    spec = Spec("sft", {"strategy": "fsdp"}, {}, str(tmp_path), str(tmp_path), processes=2, gpus=2)
    with pytest.raises(RuntimeError, match="accelerate did not enable FSDP"):
        check_strategy(spec, SimpleNamespace(is_fsdp_enabled=False))
    check_strategy(spec, SimpleNamespace(is_fsdp_enabled=True))
    assert strategy_note(spec).startswith("fsdp: the model's parameters, gradients and optimizer state are sharded")
    assert "not in the fingerprint" in strategy_note(spec)


# --------------------------------------------------------------------------- quantization


def test_quantization_mistakes_fail_at_load(project):
    assert "unknown quantization '4bti' (did you mean 4bit?)" in error_line(project, "quantization='4bti'", {})
    out = error_line(project, "quantization='4bit'", {"gpus": 1})
    assert "Dreamfile:4: rule 'model': quantization='4bit' trains LoRA adapters on a frozen quantized base: give" \
           " lora={'r': 8}" in out
    out = error_line(project, "quantization='4bit', lora={'r': 8}", {})
    assert "quantization='4bit' needs a CUDA GPU (bitsandbytes): give the rule resources={'gpus': N}" in out
    project.dreamfile('rule("e", output="m/", run=rules.train_embedding(base="x", lora={}, quantization="4bit"))\n')
    assert "rules.train_embedding() trains a sentence-transformers model and cannot quantize it" in \
           project.run("-n", code=2)


def test_the_quantization_recipe_enters_the_fingerprint(project, minilm):
    plain, plain_parts = fingerprint(project, minilm, "lora={'r': 8}", {"gpus": 1})
    quantized, parts = fingerprint(project, minilm, "lora={'r': 8}, quantization='4bit'", {"gpus": 1})
    assert quantized != plain
    assert [k for k in parts if parts[k] != plain_parts.get(k)] == ["params", "params.quantization"]
    assert fingerprint(project, minilm, "lora={'r': 8}, quantization='4BIT'", {"gpus": 1})[0] == quantized


def test_a_machine_without_cuda_or_bitsandbytes_fails_at_job_start(project, monkeypatch):
    """The rule asks for a GPU and `--resources gpus=1` lets it start here: one line before any process starts,
    exit 2; what was built before is kept."""
    from dreammake.gpus import rescan

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    rescan()
    try:
        project.dreamfile(SFT.format(options="lora={'r': 8}, quantization='4bit'", resources={"gpus": 1}))
        out = project.run("--resources", "gpus=1", code=2)
    finally:
        rescan()
    assert "rule 'model': quantization='4bit' needs a CUDA GPU and bitsandbytes: no CUDA GPU is visible here" in out
    assert len([line for line in out.splitlines() if line.startswith("error:")]) == 1, out
    assert (project.root / "train.parquet").exists() and not (project.root / "models/m").exists()
    assert list(project.plan()) == ["model"]  # the data job stays built


def test_the_bitsandbytes_config_of_4bit():
    import torch

    from dreammake.rules.train.quantize import bnb_config

    config = bnb_config(QUANTIZATIONS["4bit"])
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16 and config.bnb_4bit_quant_storage == torch.bfloat16


def test_a_worker_without_cuda_refuses_to_load_a_quantized_base(tmp_path):
    from dreammake.rules.train.quantize import loading_kwargs

    assert loading_kwargs(Spec("sft", {}, {}, str(tmp_path), str(tmp_path))) == {}
    with pytest.raises(RuntimeError, match="quantization='4bit' needs a CUDA GPU"):
        loading_kwargs(Spec("sft", {"quantization": "4bit", "lora": {}}, {}, str(tmp_path), str(tmp_path), gpus=1))


# --------------------------------------------------------------------------- GPU assignment


def test_worker_env_gives_the_workers_the_assigned_gpus(monkeypatch):
    from dreammake.rules.train.api import worker_env

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert worker_env(2, 2, devices=("2", "3"))["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert worker_env(1, 1, devices=("1",))["CUDA_VISIBLE_DEVICES"] == "1"
    assert worker_env(2, 2)["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"  # not assigned: what the coordinator sees
    assert worker_env(2, 0)["CUDA_VISIBLE_DEVICES"] == ""  # a CPU job sees no GPU
    assert worker_env(1, 0, devices=())["CUDA_VISIBLE_DEVICES"] == ""


# --------------------------------------------------------------------------- Slurm


def test_sbatch_options_of_a_multi_node_trainer():
    from dreammake.slurm import sbatch_options

    assert sbatch_options({"nodes": 2, "gpus": 4}) == ["--nodes=2", "--ntasks-per-node=1", "--gres=gpu:4"]
    assert sbatch_options({"nodes": 1, "gpus": 4}) == ["--gres=gpu:4"]


@pytest.fixture
def fake_scontrol(tmp_path, monkeypatch):
    """An `scontrol` on PATH that expands `node[01-02]` as Slurm does."""
    script = tmp_path / "bin" / "scontrol"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames node[01-02]" ] && printf "node01\\nnode02\\n"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")


def test_a_multi_node_job_starts_one_torchrun_per_node_through_srun(fake_scontrol):
    import sys

    from dreammake.rules.train.launch import worker_command

    env = {"SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "node[01-02]", "SLURM_JOB_ID": "77", "SLURM_CPUS_PER_TASK": "8"}
    command = worker_command("/w/spec.json", 4, 2, env)
    assert command[:7] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                           "--cpus-per-task=8", "bash"]
    assert command[7] == "-c"
    # what each node's shell runs, with its own SLURM_NODEID
    node1 = shlex.split(command[8].replace('"$SLURM_NODEID"', "1"))
    assert node1[:4] == ["exec", sys.executable, "-m", "torch.distributed.run"]
    flags = dict(arg.split("=", 1) for arg in node1[4:-3])
    port = flags.pop("--rdzv_endpoint").removeprefix("node01:")
    assert port.isdigit()
    assert flags == {"--nnodes": "2", "--nproc_per_node": "4", "--rdzv_backend": "c10d", "--rdzv_id": "77",
                     "--node_rank": "1"}
    assert node1[-3:] == ["-m", "dreammake.rules.train.worker", "/w/spec.json"]


def test_a_multi_node_job_outside_its_allocation_is_refused(fake_scontrol):
    from dreammake.rules.train.launch import worker_command

    with pytest.raises(ValueError, match=r"trains on 2 nodes under --executor slurm \(this job runs in no Slurm"):
        worker_command("/w/spec.json", 4, 2, {})
    with pytest.raises(ValueError, match="in a Slurm allocation of 1 node"):
        worker_command("/w/spec.json", 4, 2, {"SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "node01"})
    assert worker_command("/w/spec.json", 1, 1, {"SLURM_NNODES": "2"})[-3:] == \
        ["-m", "dreammake.rules.train.worker", "/w/spec.json"]  # one node: no srun


def test_a_multi_node_rule_run_locally_is_one_line(project, minilm):
    write_parquet(project.root / "train.parquet", [{"text": "good", "label": "pos"}] * 4)
    project.dreamfile(f"""
rule("model", input={{"train": "train.parquet"}}, output="models/m/",
     run=rules.train_classifier(base={minilm!r}, max_steps=1, batch_size=2), resources={{"nodes": 2}})
""")
    out = project.run(code=2)
    assert "rule 'model': resources={'nodes': 2} trains on 2 nodes under --executor slurm (this job runs in no" \
           " Slurm allocation)" in out


def test_fsdp_lora_on_a_lora_checkpoint_base_is_refused_before_merging(project, monkeypatch):
    """Such a result must be saved merged, which FSDP does not do: one line at job start, the base left unmerged."""
    from dreammake.gpus import rescan

    (project.root / "adapter").mkdir()
    for name in ("adapter_config.json", "config.json"):
        (project.root / "adapter" / name).write_text("{}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # `--resources gpus=2` lets the job start on this machine
    rescan()
    try:
        project.dreamfile(SFT.replace('"smollm2-135m-instruct"', '"adapter"').format(
            options="strategy='fsdp', lora={'r': 8}", resources={"gpus": 2}))
        out = project.run("--resources", "gpus=2", code=2)
    finally:
        rescan()
    assert "rule 'model': its base is a LoRA checkpoint, so the result must be saved merged, which" \
           " strategy='fsdp' does not do: train with strategy='ddp'" in out
    assert not list((project.root / ".dreammake/work").glob("*/merged-base"))
