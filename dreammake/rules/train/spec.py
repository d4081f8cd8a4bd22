"""What the coordinating process and the training workers share, without importing torch or transformers:
the worker spec, the options (defaults, each kind's own, the batch split, the dtype, the strategy and the
quantization), file names in the work folder, and the distributed rank helpers."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from dreammake.suggest import did_you_mean

COMPLETE_MARKER = ".dreammake-complete"
CHECKPOINT_SUBDIR = "checkpoints"
LOG_JSONL = "train_log.jsonl"
RESULT_JSON = "result.json"

DEFAULTS: dict[str, Any] = {
    "lora": None,
    "merge": False,
    "epochs": 1,
    "max_steps": None,
    "batch_size": 4,  # the global batch (see per_device_batch)
    "gradient_accumulation": 1,
    "eval_batch_size": None,  # per process; default: the per-process training batch
    "learning_rate": None,  # kind-specific default (see default_learning_rate)
    "seed": 42,
    "dtype": "auto",
    "max_length": 512,
    "save_steps": 50,
    "save_total_limit": 2,
    "eval_steps": None,
    "early_stopping_patience": None,
    "gradient_checkpointing": False,
    "warmup": 0.0,
    "lr_scheduler": "linear",
    "weight_decay": 0.0,
    "strategy": "ddp",  # how the processes split the work (see STRATEGIES); not in the fingerprint
    "quantization": None,  # "4bit": QLoRA (see quantization_recipe); in the fingerprint
    "trainer_args": None,  # extra transformers.TrainingArguments fields
}

_PROMPTING = ("prompt_template", "system_prompt", "chat_template")
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "sft": ("input_column", "output_column", "messages_column", "text_column", *_PROMPTING, "completion_only_loss",
            "packing", "max_target_length"),
    "dpo": ("prompt_column", "chosen_column", "rejected_column", *_PROMPTING, "beta"),
    "reward": ("prompt_column", "chosen_column", "rejected_column", "margin_column", "chosen_score_column",
               "rejected_score_column", *_PROMPTING),
    "grpo": ("prompt_column", *_PROMPTING, "reward_fn", "reward_model", "num_generations", "generation_batch_size",
             "max_completion_length", "temperature", "beta"),
    "classifier": ("text_column", "text_pair_column", "label_column", "labels"),
    "embedding": ("anchor_column", "positive_column", "negative_column", "label_column", "loss"),
}
"""The options each kind reads besides DEFAULTS' (a test checks them against the kind modules)."""

DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "half": "float16",
          "fp32": "float32", "float32": "float32", "float": "float32"}


STRATEGIES = {
    "ddp": "each process holds the whole model",
    "fsdp": "the model's parameters, gradients and optimizer state are sharded over the processes (FSDP2)",
}
"""Training strategies. They change where the weights live, not what is trained: no part of the fingerprint."""

QUANTIZATIONS = {
    "4bit": {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16",
             "storage_dtype": "bfloat16"},
}
"""Quantizations of the base (bitsandbytes); the recipe enters the fingerprint."""


def valid_options(kind: str) -> frozenset[str]:
    """Every option a `rules.train_<kind>()` accepts."""
    return frozenset(DEFAULTS) | frozenset(KIND_OPTIONS[kind])


def process_count(processes: int, gpus: int, nodes: int = 1) -> int:
    """How many training processes a job starts: one per GPU, else `processes` (at least one), on each node."""
    return max(1, nodes) * (gpus if gpus > 0 else max(1, processes))


def checked_strategy(strategy: Any) -> str:
    """The strategy's name, or ValueError with the closest valid one."""
    name = str(strategy or DEFAULTS["strategy"]).lower()
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}{did_you_mean(name, STRATEGIES)}"
                         f" (use {' or '.join(STRATEGIES)})")
    return name


def quantization_recipe(quantization: Any) -> dict[str, Any] | None:
    """What a quantization name stands for (None: the base is not quantized), or ValueError."""
    if quantization in (None, False, "", "none"):
        return None
    name = str(quantization).lower()
    if name not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}{did_you_mean(name, QUANTIZATIONS)}"
                         f" (use {' or '.join(QUANTIZATIONS)})")
    return dict(QUANTIZATIONS[name])


def check_placement(options: dict[str, Any], processes: int, gpus: int, nodes: int) -> None:
    """ValueError when the strategy or quantization cannot run on what the rule's resources ask for.

    transformers shards with FSDP through accelerate, which does so only on GPUs (on CPU it would silently train
    with DDP); bitsandbytes' 4-bit layers need CUDA, and only LoRA adapters train on a quantized base.
    """
    fsdp = checked_strategy(options.get("strategy")) == "fsdp"
    if fsdp and (gpus < 1 or process_count(processes, gpus, nodes) < 2):
        raise ValueError("strategy='fsdp' shards the model over GPUs: it needs resources={'gpus': N} with"
                         " N × nodes ≥ 2 (accelerate runs FSDP on CUDA only; on CPU train with strategy='ddp')")
    if fsdp and options.get("lora") is not None and options.get("merge"):
        raise ValueError("strategy='fsdp' saves LoRA adapters unmerged: drop merge=True or train with strategy='ddp'")
    if quantization_recipe(options.get("quantization")) is None:
        return
    if options.get("lora") is None:
        raise ValueError(f"quantization={options['quantization']!r} trains LoRA adapters on a frozen quantized"
                         " base: give lora={'r': 8} (full fine-tuning cannot update 4-bit weights)")
    if gpus < 1:
        raise ValueError(f"quantization={options['quantization']!r} needs a CUDA GPU (bitsandbytes):"
                         " give the rule resources={'gpus': N}")


def resolved_dtype(dtype: Any, gpus: int) -> str:
    """The dtype a job trains in, by its torch name: "auto" is bfloat16 when the job gets GPUs, else float32.

    Resolved where the fingerprint is computed, so the identity names what the workers use.
    """
    name = str(dtype or "auto").lower()
    if name == "auto":
        return "bfloat16" if gpus > 0 else "float32"
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} (use auto, bf16, fp16 or fp32)")
    return DTYPES[name]


def per_device_batch(batch_size: Any, gradient_accumulation: Any, processes: int) -> int:
    """Rows each process takes per forward pass: batch_size // (processes * gradient_accumulation).

    `batch_size` is the global batch (rows per optimizer step over all processes), so 1 or 8 processes train
    the same recipe; `gradient_accumulation` splits each process's share into that many micro-batches.
    """
    batch = int(DEFAULTS["batch_size"] if batch_size is None else batch_size)
    accumulation = int(DEFAULTS["gradient_accumulation"] if gradient_accumulation is None else gradient_accumulation)
    if batch < 1 or accumulation < 1:
        raise ValueError(f"batch_size={batch} and gradient_accumulation={accumulation} must be at least 1")
    share = processes * accumulation
    if batch % share:
        raise ValueError(f"batch_size={batch} is the global batch and must be a multiple of processes ×"
                         f" gradient_accumulation = {processes} × {accumulation} (each process takes"
                         " batch_size / (processes × gradient_accumulation) rows per micro-batch)")
    return batch // share


def default_learning_rate(kind: str, lora: bool) -> float:
    """The learning rate used when a rule sets none: lower for preference/RL kinds and full fine-tuning."""
    if kind in ("dpo", "grpo"):
        return 5e-5 if lora else 1e-6
    if kind == "embedding":
        return 1e-4 if lora else 2e-5
    return 2e-4 if lora else 2e-5


@dataclass
class Spec:
    """Everything a worker needs; serialised to JSON and handed to ``python -m <pkg>.worker``."""

    kind: str
    options: dict[str, Any]
    inputs: dict[str, str]
    output_dir: str
    work_dir: str
    processes: int = 1  # all training processes, over every node
    gpus: int = 0  # per node
    extra: dict[str, Any] = field(default_factory=dict)
    nodes: int = 1

    def to_json(self) -> str:
        """The spec as the JSON file a worker reads."""
        return json.dumps(self.__dict__, indent=1, default=str)

    @classmethod
    def from_file(cls, path: str) -> Spec:
        """Read a spec written by `to_json`."""
        with open(path, encoding="utf-8") as fh:
            return cls(**json.load(fh))

    def opt(self, name: str, default: Any = None) -> Any:
        """An option's value: the rule's, else DEFAULTS', else `default`."""
        if name in self.options and self.options[name] is not None:
            return self.options[name]
        if name in DEFAULTS and DEFAULTS[name] is not None:
            return DEFAULTS[name]
        return default

    @property
    def checkpoint_dir(self) -> str:
        """Where intermediate checkpoints go (inside the work folder, so a rerun resumes from them)."""
        return os.path.join(self.work_dir, CHECKPOINT_SUBDIR)

    @property
    def device_batch(self) -> int:
        """This job's per-process micro-batch (see `per_device_batch`)."""
        return per_device_batch(self.opt("batch_size"), self.opt("gradient_accumulation"), self.processes)

    @property
    def use_cpu(self) -> bool:
        """True when the job was given no GPU."""
        return self.gpus <= 0


# --------------------------------------------------------------------------- distributed helpers


def rank() -> int:
    """This process's rank among the training processes (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many training processes run (1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this is the process that writes outputs and logs."""
    return rank() == 0
