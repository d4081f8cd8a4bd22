"""`train_openai_finetune`: fine-tune a model through an OpenAI-compatible API (files + fine_tuning.jobs).

    rule("ft", input="targets/pairs.parquet", output="models/ft/",
         run=rules.train_openai_finetune(base="openai/gpt-4o-mini-2024-07-18", input_column="question",
                                         output_column="answer"))
    tuned = llm(target("models/ft/"))     # generates with the fine-tuned model, through the same API

The training rows become a chat JSONL, uploaded once; the job is created once, and both ids are kept in the
job's work folder (`openai-finetune.json`) before dreammake waits on the job, so a killed run reattaches to the
same job on the next run instead of paying twice. The target is a small folder holding the fine-tuned model's id
(`dreammake-api-model.json`), which `llm(target(...))` turns into an API model.
"""

from __future__ import annotations

import json
import os
from typing import Any

from dreammake.actions import Action, JobContext
from dreammake.errors import DreamError
from dreammake.targets import API_MODEL_FILE

from .data import check_columns

LEDGER = "openai-finetune.json"  # inside the job's work folder: {"file_id", "job_id"}


class TrainOpenAIFineTune(Action):
    """A fine-tuning job on an OpenAI-compatible API (see `train_openai_finetune`)."""

    kind = "train_openai_finetune"
    version = 1

    def __init__(self, base: str, input_column: str = "input", output_column: str = "output",
                 system: str | None = None, api_base: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 hyperparameters: dict[str, Any] | None = None, suffix: str | None = None, poll_s: float = 15.0):
        from dreammake.llm.openai_http import OPENAI_COMPATIBLE, split_provider

        provider, self.name = split_provider(base)
        default_base = OPENAI_COMPATIBLE.get(provider or "openai", (None, None))[0]
        self.api_base = (api_base or default_base or "").rstrip("/")
        if not self.api_base:
            raise ValueError(f"train_openai_finetune(): {base!r} needs api_base=")
        self.base, self.provider = base, provider or "openai"
        self.input_column, self.output_column, self.system = input_column, output_column, system
        self.api_key_env, self.hyperparameters, self.suffix = api_key_env, dict(hyperparameters or {}), suffix
        self.poll_s = poll_s

    def bind(self, rule: Any) -> None:
        if len(rule.inputs) != 1 or len(rule.outputs) != 1 or 0 not in rule.folders:
            raise DreamError(f"rule {rule.name!r}: rules.train_openai_finetune() reads one table and writes one "
                             "folder (models/NAME/)", rule.where)

    def params(self) -> dict[str, Any]:
        from dreammake.llm.util import public_url

        return {"base": self.base, "api_base": public_url(self.api_base), "input_column": self.input_column,
                "output_column": self.output_column, "system": self.system,
                "hyperparameters": self.hyperparameters, "suffix": self.suffix}

    def training_file(self, ctx: JobContext) -> bytes:
        """The input rows as the chat JSONL fine-tuning APIs take."""
        from dreammake.tables import read_table

        source = ctx.input_path(0)
        check_columns(ctx, source, [self.input_column, self.output_column])
        table = read_table(source)
        lines = []
        for prompt, answer in zip(table.column(self.input_column).to_pylist(),
                                  table.column(self.output_column).to_pylist()):
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
                {"role": "user", "content": str(prompt)}, {"role": "assistant", "content": str(answer)}]
            lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
        return ("\n".join(lines) + "\n").encode()

    def execute(self, ctx: JobContext) -> None:
        from dreammake.llm.base import LLMError
        from dreammake.llm.openai_jobs import JobsClient, Ledger, wait
        from dreammake.llm.util import api_key_from, public_url

        rule = ctx.job.rule
        client = JobsClient(self.api_base, api_key_from(None, self.api_key_env), f"{self.base} fine-tuning")
        ledger = Ledger(os.path.join(ctx.work_dir, LEDGER))
        try:
            job_id = ledger.get("job_id")
            if job_id is None:
                file_id = ledger.get("file_id")
                if file_id is None:
                    file_id = client.upload(f"{rule.name}.jsonl", self.training_file(ctx), "fine-tune")
                    ledger.set(file_id=file_id)
                body: dict[str, Any] = {"model": self.name, "training_file": file_id}
                if self.hyperparameters:
                    body["hyperparameters"] = self.hyperparameters
                if self.suffix:
                    body["suffix"] = self.suffix
                job_id = client.call("POST", "/fine_tuning/jobs", body)["id"]
                ledger.set(job_id=job_id)
                ctx.log(f"rule {rule.name!r}: fine-tuning job {job_id} created")
            else:
                ctx.log(f"rule {rule.name!r}: reattached to fine-tuning job {job_id}")
            job = wait(lambda: client.call("GET", f"/fine_tuning/jobs/{job_id}"), ctx.cancel, self.poll_s,
                       lambda status: ctx.log(f"rule {rule.name!r}: fine-tuning job {job_id}: {status}"))
        except LLMError as exc:
            raise DreamError(f"rule {rule.name!r}: {exc}", rule.where) from None
        if job.get("status") != "succeeded" or not job.get("fine_tuned_model"):
            error = (job.get("error") or {}).get("message") if isinstance(job.get("error"), dict) else job.get("error")
            raise DreamError(f"rule {rule.name!r}: fine-tuning job {job_id} ended {job.get('status')}"
                             + (f": {error}" if error else ""), rule.where)
        folder = next(iter(ctx.outputs.values()))
        os.makedirs(folder, exist_ok=True)
        model = f"{self.provider}/{job['fine_tuned_model']}"
        with open(os.path.join(folder, API_MODEL_FILE), "w") as f:
            json.dump({"model": model, "api_base": public_url(self.api_base), "base": self.base, "job_id": job_id,
                       "trained_tokens": job.get("trained_tokens")}, f, indent=2)
        ctx.stats["train_job_id"] = job_id
        ctx.stats["train_fine_tuned_model"] = model


def train_openai_finetune(base: str, input_column: str = "input", output_column: str = "output",
                          system: str | None = None, api_base: str | None = None,
                          api_key_env: str = "OPENAI_API_KEY", hyperparameters: dict[str, Any] | None = None,
                          suffix: str | None = None, poll_s: float = 15.0) -> TrainOpenAIFineTune:
    """Fine-tune `base` (an OpenAI-compatible `PROVIDER/NAME`) on the input table's (`input_column`,
    `output_column`) pairs through the provider's files and fine-tuning jobs API; the target folder names the
    fine-tuned model, usable as `llm(target("models/ft/"))`. A killed run reattaches to its job.

    Example: `rules.train_openai_finetune(base="openai/gpt-4o-mini-2024-07-18", input_column="q",
    output_column="a", hyperparameters={"n_epochs": 2})`.
    """
    return TrainOpenAIFineTune(base, input_column, output_column, system, api_base, api_key_env, hyperparameters,
                               suffix, poll_s)
