"""Shared helpers for the training kinds: options, data, trainer arguments, logging and output."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Mapping
from typing import Any

from .spec import (
    COMPLETE_MARKER,
    LOG_JSONL,
    RESULT_JSON,
    STRATEGIES,
    Spec,
    checked_strategy,
    default_learning_rate,
    resolved_dtype,
    world_size,
)

# --------------------------------------------------------------------------- dtype


def resolve_dtype(spec: Spec):
    """Return (torch dtype for weights, bf16 flag, fp16 flag) for the dtype the coordinator resolved."""
    import torch

    name = resolved_dtype(spec.opt("dtype"), spec.gpus)
    return getattr(torch, name), name == "bfloat16", name == "float16"


def weight_dtype(spec: Spec):
    """Weights stay fp32 for full fine-tuning (mixed precision autocasts); LoRA bases use the half dtype."""
    import torch

    dtype, _bf16, _fp16 = resolve_dtype(spec)
    if spec.opt("lora") is None or dtype == torch.float16:
        return torch.float32
    return dtype


# --------------------------------------------------------------------------- determinism


def seed_everything(spec: Spec) -> None:
    """Seed Python, NumPy and torch before any model is built (new heads, LoRA init, dropout, sampling; the
    trainers seed data order from the same seed); on CPU also use torch's deterministic algorithms."""
    from transformers import enable_full_determinism, set_seed

    seed = int(spec.opt("seed"))
    if spec.use_cpu:
        enable_full_determinism(seed)
    else:
        set_seed(seed)


def rebuild_guarantee(spec: Spec) -> str:
    """What the card says about rebuilding this checkpoint from the same fingerprint."""
    if spec.use_cpu:
        return "yes on CPU (bit-identical weights with the same process and thread counts)"
    return "not guaranteed on GPU (kernels may reduce in a different order)"


# --------------------------------------------------------------------------- data


def load_table(path: str):
    """Read a Parquet file into an in-memory ``datasets.Dataset`` (no HF cache directory involved)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    return Dataset(pq.read_table(path))


def load_splits(spec: Spec):
    if "train" not in spec.inputs:
        raise ValueError("inputs must contain a 'train' Parquet file")
    train = load_table(spec.inputs["train"])
    val = load_table(spec.inputs["validation"]) if spec.inputs.get("validation") else None
    if len(train) == 0:
        raise ValueError("the train input has no rows")
    return train, val


def pick_column(columns: list[str], spec: Spec, option: str, candidates: tuple[str, ...], required=True):
    """Column named by ``options[option]``, else the first of ``candidates`` that exists."""
    name = spec.options.get(option)
    if name:
        if name not in columns:
            raise ValueError(f"option {option}={name!r}: no such column (have {columns})")
        return name
    for cand in candidates:
        if cand in columns:
            return cand
    if required:
        raise ValueError(f"cannot find a column for {option} among {columns}; set options[{option!r}]")
    return None


_FIELD = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")


def render_template(template: str, row: dict[str, Any], input_column: str | None) -> str:
    """Fill ``{column}`` placeholders (``{input}`` always means the input column); other braces stay."""

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key == "input" and input_column is not None and "input" not in row:
            return str(row[input_column])
        if key in row:
            return str(row[key])
        return m.group(0)

    return _FIELD.sub(sub, template)


# --------------------------------------------------------------------------- LoRA


def lora_config(spec: Spec, task_type: str, **overrides):
    from peft import LoraConfig

    cfg = dict(spec.opt("lora") or {})
    r = int(cfg.pop("r", 8))
    kwargs: dict[str, Any] = {
        "r": r,
        "lora_alpha": cfg.pop("alpha", cfg.pop("lora_alpha", 2 * r)),
        "lora_dropout": cfg.pop("dropout", cfg.pop("lora_dropout", 0.0)),
        "target_modules": cfg.pop("target_modules", "all-linear"),
        "task_type": task_type,
    }
    kwargs.update(overrides)
    kwargs.update(cfg)
    return LoraConfig(**kwargs)


# --------------------------------------------------------------------------- trainer arguments


def training_kwargs(spec: Spec, has_eval: bool, kind: str) -> dict[str, Any]:
    """Keyword arguments shared by transformers.TrainingArguments and its TRL/ST subclasses."""
    _dtype, bf16, fp16 = resolve_dtype(spec)
    lora = spec.opt("lora") is not None
    lr = spec.options.get("learning_rate") or default_learning_rate(kind, lora)
    max_steps = spec.opt("max_steps")
    save_steps = int(spec.opt("save_steps"))
    patience = spec.opt("early_stopping_patience")
    kw: dict[str, Any] = {
        "output_dir": spec.checkpoint_dir,
        "per_device_train_batch_size": spec.device_batch,
        "per_device_eval_batch_size": int(spec.opt("eval_batch_size", spec.device_batch)),
        "gradient_accumulation_steps": int(spec.opt("gradient_accumulation")),
        "learning_rate": float(lr),
        "num_train_epochs": float(spec.opt("epochs")),
        "max_steps": int(max_steps) if max_steps else -1,
        "seed": int(spec.opt("seed")),
        "data_seed": int(spec.opt("seed")),
        "full_determinism": spec.use_cpu,  # deterministic algorithms: on CPU they cost little
        "logging_steps": 1,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": int(spec.opt("save_total_limit")),
        "report_to": "none",
        "bf16": bf16,
        "fp16": fp16,
        "use_cpu": spec.use_cpu,
        "disable_tqdm": True,
        "gradient_checkpointing": bool(spec.opt("gradient_checkpointing")),
        "warmup_steps": float(spec.opt("warmup")),  # <1: ratio of total steps (transformers 5)
        "lr_scheduler_type": spec.opt("lr_scheduler"),
        "weight_decay": float(spec.opt("weight_decay")),
        "dataloader_num_workers": 0,
        "remove_unused_columns": True,
    }
    if world_size() > 1:
        kw["ddp_backend"] = "gloo" if spec.use_cpu else "nccl"
        kw["ddp_find_unused_parameters"] = False
    kw.update(strategy_kwargs(spec))
    if has_eval:
        eval_steps = int(spec.opt("eval_steps") or save_steps)
        kw["eval_strategy"] = "steps"
        kw["eval_steps"] = eval_steps
        if patience:
            # EarlyStoppingCallback needs the best model tracked: saves must line up with evaluations.
            kw["save_steps"] = eval_steps
            kw["load_best_model_at_end"] = True
            kw["metric_for_best_model"] = "eval_loss"
            kw["greater_is_better"] = False
    else:
        kw["eval_strategy"] = "no"
    kw.update(spec.options.get("trainer_args") or {})
    return kw


def strategy_kwargs(spec: Spec) -> dict[str, Any]:
    """TrainingArguments for the job's strategy: with "fsdp", FSDP2 wrapping each transformer block, full weights
    gathered for checkpoints and the final save, and FSDP's own activation checkpointing."""
    if checked_strategy(spec.opt("strategy")) != "fsdp":
        return {}
    return {
        "fsdp": True,
        "fsdp_config": {
            "version": 2,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # the model's _no_split_modules
            "reshard_after_forward": True,
            "state_dict_type": "FULL_STATE_DICT",  # checkpoints and output load without FSDP
            "activation_checkpointing": bool(spec.opt("gradient_checkpointing")),
        },
        "gradient_checkpointing": False,  # FSDP checkpoints activations itself (both at once is an error)
    }


def check_strategy(spec: Spec, trainer) -> None:
    """RuntimeError when the trainer does not shard as the job asked (accelerate silently falls back to DDP
    where it cannot run FSDP)."""
    if checked_strategy(spec.opt("strategy")) == "fsdp" and not getattr(trainer, "is_fsdp_enabled", False):
        raise RuntimeError("strategy='fsdp' was asked for, but accelerate did not enable FSDP (it does with CUDA"
                           f" GPUs and at least 2 processes; this job has {world_size()} process(es),"
                           f" {spec.gpus} GPU(s) per node)")


def strategy_note(spec: Spec) -> str:
    """What the summary (and the model card) says about the strategy."""
    name = checked_strategy(spec.opt("strategy"))
    return f"{name}: {STRATEGIES[name]} (not in the fingerprint: it changes where the weights live, not the recipe)"


def callbacks(spec: Spec, has_eval: bool) -> list:
    from transformers import EarlyStoppingCallback

    cbs: list = [JsonlLogCallback(os.path.join(spec.work_dir, LOG_JSONL))]
    patience = spec.opt("early_stopping_patience")
    if has_eval and patience:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=int(patience)))
    return cbs


def _make_log_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class JsonlLogCallback(_make_log_callback_base()):
    """Appends every ``on_log`` record (rank 0) as one JSON line, flushed immediately."""

    def __init__(self, path: str):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        rec = {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch, "time": time.time()}
        rec.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str, bool))})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()


# --------------------------------------------------------------------------- token counting


def _count_tokens(inputs) -> int:
    if not isinstance(inputs, Mapping):  # BatchEncoding is a UserDict, not a dict
        return 0
    if "attention_mask" in inputs:
        return int(inputs["attention_mask"].sum().item())
    masks = [k for k in inputs if k.endswith("attention_mask")]
    if masks:
        return int(sum(inputs[k].sum().item() for k in masks))
    if "prompt_mask" in inputs and "completion_mask" in inputs:  # GRPO-style batches
        return int(inputs["prompt_mask"].sum().item() + inputs["completion_mask"].sum().item())
    if "input_ids" in inputs:
        return int(inputs["input_ids"].numel())
    return 0


def with_token_counter(trainer_cls):
    """Subclass a Trainer so that ``compute_loss`` counts the (non-padding) tokens it trains on."""

    class Counting(trainer_cls):
        dm_tokens = 0

        def compute_loss(self, model, inputs, *args, **kwargs):
            if model.training:
                try:
                    self.dm_tokens += _count_tokens(inputs)
                except Exception:  # counting is best effort, never fatal
                    pass
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:  # a training record: the tokens so far feed the coordinator's tokens/s
                # (this process's count times the process count: an estimate, with no collective per log)
                logs = {**logs, "tokens": self.dm_tokens * world_size()}
            return super().log(logs, *args, **kwargs)

    Counting.__name__ = trainer_cls.__name__
    Counting.__qualname__ = trainer_cls.__qualname__
    return Counting


def total_tokens(trainer) -> int:
    tokens = int(getattr(trainer, "dm_tokens", 0))
    if world_size() > 1:
        import torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            t = torch.tensor([tokens], dtype=torch.int64, device=trainer.args.device)
            dist.all_reduce(t)
            tokens = int(t.item())
    return tokens


# --------------------------------------------------------------------------- resume


def last_checkpoint(checkpoint_dir: str) -> str | None:
    """Newest ``checkpoint-N`` whose trainer_state.json parses (a kill mid-save leaves it missing/partial)."""
    if not os.path.isdir(checkpoint_dir):
        return None
    found = []
    for name in os.listdir(checkpoint_dir):
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        if m:
            found.append((int(m.group(1)), os.path.join(checkpoint_dir, name)))
    for _step, path in sorted(found, reverse=True):
        try:
            with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as fh:
                json.load(fh)
            return path
        except (OSError, ValueError):
            continue
    return None


def checkpoint_step(path: str | None) -> int:
    if not path:
        return 0
    return int(path.rsplit("-", 1)[-1])


# --------------------------------------------------------------------------- output


METRIC_COLUMNS = ["step", "train_loss", "eval_loss", "learning_rate", "epoch"]


def metrics_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step, merging train and eval log records."""
    by_step: dict[int, dict[str, Any]] = {}
    for rec in log_history:
        if "train_runtime" in rec:  # the end-of-training summary record
            continue
        step = int(rec.get("step", 0))
        row = by_step.setdefault(step, {"step": step})
        for key, value in rec.items():
            if key in ("step", "tokens") or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            name = "train_loss" if key == "loss" else key
            row[name] = float(value)
    return [by_step[s] for s in sorted(by_step)]


def write_metrics(path: str, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    extra = sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    cols: dict[str, list] = {c: [] for c in METRIC_COLUMNS + extra}
    for r in rows:
        for c in cols:
            v = r.get(c)
            cols[c].append(None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    arrays = {c: pa.array(v, type=pa.int64() if c == "step" else pa.float64()) for c, v in cols.items()}
    pq.write_table(pa.table(arrays), path)


def summarise(trainer, train_output, spec: Spec, resumed_from: str | None, eval_loss, tokens: int) -> dict:
    rows = metrics_rows(trainer.state.log_history)
    train_losses = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    runtime = float(train_output.metrics.get("train_runtime", 0.0)) if train_output else 0.0
    summary = {
        "kind": spec.kind,
        "steps": int(trainer.state.global_step),
        "epoch": float(trainer.state.epoch or 0.0),
        "train_loss": train_losses[-1] if train_losses else None,
        "first_train_loss": train_losses[0] if train_losses else None,
        "mean_train_loss": float(train_output.training_loss) if train_output else None,
        "eval_loss": None if eval_loss is None else float(eval_loss),
        "tokens": tokens,
        "train_runtime": runtime,
        "tokens_per_second": (tokens / runtime) if runtime > 0 else None,
        "resumed_from_step": checkpoint_step(resumed_from),
        "world_size": world_size(),
        "strategy": strategy_note(spec),
        "bit_identical_rebuilds": rebuild_guarantee(spec),
    }
    return summary, rows


def finish_output(spec: Spec, trainer, summary: dict, rows: list[dict]) -> None:
    """Training args, metrics, cleanup of TRL's model card, completion marker (written last)."""
    out = spec.output_dir
    os.makedirs(out, exist_ok=True)
    args_dict = trainer.args.to_dict() if hasattr(trainer.args, "to_dict") else {}
    payload = {
        "kind": spec.kind,
        "options": {k: v for k, v in spec.options.items() if k != "reward_fn"} | _reward_fn_repr(spec),
        "trainer_args": args_dict,
        "summary": summary,
    }
    with open(os.path.join(out, "training_args.json"), "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, default=str)
    write_metrics(os.path.join(out, "metrics.parquet"), rows)
    for junk in ("README.md", "training_args.bin"):
        p = os.path.join(out, junk)
        if os.path.exists(p):
            os.remove(p)
    shutil.rmtree(os.path.join(out, "runs"), ignore_errors=True)
    with open(os.path.join(out, COMPLETE_MARKER), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, default=str)


def _reward_fn_repr(spec: Spec) -> dict:
    ref = spec.extra.get("reward_fn")
    return {"reward_fn": ref} if ref else {}


def write_result(spec: Spec, summary: dict) -> None:
    path = os.path.join(spec.work_dir, RESULT_JSON)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, default=str)
    os.replace(tmp, path)


def ensure_pad_token(tokenizer) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
