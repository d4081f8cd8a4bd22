"""The card of a job as plain data: Hub front matter, splits, columns, examples and lineage.

This dict is what `dreammake-card.json` holds and what the Jinja templates render.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dreammake.cards.lineage import Lineage, trace
from dreammake.known import UNKNOWN, hub_id
from dreammake.targets import is_table_path

if TYPE_CHECKING:
    from dreammake.graph import Graph, Job
    from dreammake.state import State

CARD_VERSION = 1
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
         (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))
TASKS = {
    "prompt": "text-generation", "process_with_prompt": "text-generation", "data_from_prompt": "text-generation",
    "data_from_attributed_prompt": "text-generation", "few_shot_prompt": "text-generation",
    "few_shot_prompt_with_retrieval": "text-generation", "rag_prompt": "question-answering",
    "filter_with_prompt": "text-classification", "rank_with_prompt": "text-classification",
    "judge_pairs": "text-classification", "judge_generation_pairs": "text-classification",
    "embed": "feature-extraction",
}
PIPELINES = {"train_classifier": "text-classification", "train_reward": "text-classification",
             "train_embedding": "sentence-similarity"}
INPUT_COLUMNS = ("input_column", "prompt_column", "text_column")
EXAMPLES = 3
EXAMPLE_CHARS = 300


def size_category(rows: int) -> str:
    """The Hub's size category for a row count: `n<1K`, `1K<n<10K`, ... `n>1T`."""
    for limit, name in SIZES:
        if rows < limit:
            return name
    return "n>1T"


def card_type(job: Job) -> str:
    """`model` for a job that makes a folder (a checkpoint), else `dataset`."""
    return "model" if job.rule.folders else "dataset"


def splits(job: Job) -> list[tuple[str, str]]:
    """(split name, path) of a job's Parquet outputs: named outputs keep their names, a single one is `train`."""
    parquet = [(name, path) for name, path in job.outputs if is_table_path(path)]
    out = []
    for name, path in parquet:
        if name is None:
            name = "train" if len(parquet) == 1 else os.path.splitext(os.path.basename(path))[0]
        out.append((re.sub(r"\W", "_", name), path))
    return out


def build_card(graph: Graph, state: State, job: Job, files: dict[str, str] | None = None,
               repo_id: str | None = None, license: str | None = None,  # noqa: A002 - the Hub's own word
               details: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The card of `job`. `files` maps split → path as the card should cite it (default: the local paths);
    `repo_id` is where it will be published (for the usage snippet); `license` overrides the derived one."""
    lineage = trace(graph, state, job, details)
    card: dict[str, Any] = {
        "dreammake_card": CARD_VERSION,
        "type": card_type(job),
        "name": job.name,
        "targets": job.output_paths,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": lineage.target.fingerprint,
        "license": license or derived_license(lineage),
        "repo_id": repo_id,
    }
    if card["type"] == "model":
        card["model"] = model_section(lineage, job, repo_id, graph)
        card["front_matter"] = model_front_matter(card, lineage)
    else:
        card["splits"] = split_section(lineage, job, files)
        card["columns"], card["examples"] = columns_and_examples(job)
        card["front_matter"] = dataset_front_matter(card, lineage)
    card["lineage"] = lineage.to_dict()
    return card


def derived_license(lineage: Lineage) -> str:
    """The one license shared by every upstream model and dataset; `other` if they differ; else `unknown`."""
    licenses = {x.get("license") for x in [*lineage.models(), *lineage.datasets()]} - {None, UNKNOWN}
    if len(licenses) == 1:
        return licenses.pop()
    return "other" if licenses else UNKNOWN


def _tags(lineage: Lineage, *extra: str) -> list[str]:
    kinds = [s.kind.removeprefix("train_") for s in lineage.steps if s.kind != "function"]
    tags = ["dreammake", *extra, *kinds]
    if any(m.get("role") == "generator" for m in lineage.models()):
        tags.insert(1, "synthetic")
    return list(dict.fromkeys(tags))


def split_section(lineage: Lineage, job: Job, files: dict[str, str] | None) -> list[dict[str, Any]]:
    rows = {o["path"]: o["rows"] for o in lineage.target.outputs}
    return [{"split": split, "path": path, "file": (files or {}).get(split, path), "rows": rows.get(path)}
            for split, path in splits(job)]


def dataset_front_matter(card: dict[str, Any], lineage: Lineage) -> dict[str, Any]:
    """Hub dataset card metadata: license, tags, size category, sources, tasks, data files."""
    total = sum(s["rows"] or 0 for s in card["splits"])
    meta: dict[str, Any] = {"license": card["license"], "pretty_name": lineage.target.rule,
                            "tags": _tags(lineage), "size_categories": [size_category(total)]}
    hub_sources = [d["repo"] for d in lineage.datasets() if d.get("repo") and not d.get("local")]
    if hub_sources:
        meta["source_datasets"] = hub_sources
    tasks = [TASKS[s.kind] for s in reversed(lineage.steps) if s.kind in TASKS]
    if tasks:
        meta["task_categories"] = list(dict.fromkeys(tasks))
    meta["configs"] = [{"config_name": "default",
                        "data_files": [{"split": s["split"], "path": s["file"]} for s in card["splits"]]}]
    return meta


def columns_and_examples(job: Job) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Column names/types and the first rows (long values cut) of the job's first Parquet output."""
    parts = splits(job)
    if not parts or not os.path.isfile(parts[0][1]):
        return [], []
    import pyarrow.parquet as pq

    f = pq.ParquetFile(parts[0][1])
    columns = [{"name": field.name, "type": str(field.type)} for field in f.schema_arrow]
    batch = next(f.iter_batches(batch_size=EXAMPLES), None)
    rows = batch.to_pylist() if batch is not None else []
    return columns, [{k: _short(v) for k, v in row.items()} for row in rows]


def _short(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > EXAMPLE_CHARS:
        return text[:EXAMPLE_CHARS] + "…"
    return value


def model_section(lineage: Lineage, job: Job, repo_id: str | None, graph: Graph) -> dict[str, Any]:
    """What the model card needs beyond lineage: library, pipeline, base model, examples, training summary."""
    step = lineage.target
    folder = job.output_paths[0]
    adapter = os.path.exists(os.path.join(folder, "adapter_config.json"))
    base_spec = _base_spec(lineage, graph)
    library = "sentence-transformers" if step.kind == "train_embedding" else "peft" if adapter else "transformers"
    pipeline = PIPELINES.get(step.kind) or ("text2text-generation" if _encoder_decoder(folder) else "text-generation")
    from dreammake.llm.models import ALIASES

    return {"folder": folder, "repo_id": repo_id or folder, "adapter": adapter, "library_name": library,
            "pipeline_tag": pipeline, "base_model": hub_id(base_spec) if base_spec else None,
            "base_spec": base_spec, "base_gguf": ALIASES[base_spec].filename if base_spec in ALIASES else None,
            "examples": training_examples(job, step.params),
            "training": step.training or _training_summary(folder)}


def _base_spec(lineage: Lineage, graph: Graph) -> str | None:
    """The base model spec, following checkpoints trained upstream back to a named model."""
    by_output = {o["path"]: s for s in lineage.steps for o in s.outputs}
    base = lineage.target.params.get("base")
    seen = set()
    while isinstance(base, str) and base in by_output and base not in seen:
        seen.add(base)
        base = by_output[base].params.get("base")
    return base if isinstance(base, str) else None


def _encoder_decoder(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "config.json")) as f:
            return bool(json.load(f).get("is_encoder_decoder"))
    except (OSError, ValueError):
        return False


def _training_summary(folder: str) -> dict[str, Any]:
    try:
        with open(os.path.join(folder, "training_args.json")) as f:
            return dict(json.load(f).get("summary") or {})
    except (OSError, ValueError):
        return {}


def training_examples(job: Job, params: dict[str, Any]) -> list[str]:
    """A few inputs from the training data (the `train` input, else the first Parquet input)."""
    named = {n: p for n, p in job.inputs if n}
    path = named.get("train") or next((p for p in job.input_paths if is_table_path(p)), None)
    if not path or not os.path.isfile(path):
        return []
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    names = f.schema_arrow.names
    column = next((params[k] for k in INPUT_COLUMNS if params.get(k) in names), None)
    if column is None:
        column = next((field.name for field in f.schema_arrow if str(field.type) in ("string", "large_string")), None)
    if column is None:
        return []
    batch = next(f.iter_batches(batch_size=EXAMPLES, columns=[column]), None)
    values = batch.column(0).to_pylist() if batch is not None else []
    return [str(_short(str(v))) for v in values if v is not None]


def model_front_matter(card: dict[str, Any], lineage: Lineage) -> dict[str, Any]:
    """Hub model card metadata: license, base model, library, pipeline, tags, datasets, widget examples."""
    model = card["model"]
    extra = [lineage.target.kind.removeprefix("train_")] + (["lora"] if model["adapter"] else [])
    meta: dict[str, Any] = {"license": card["license"]}
    if model["base_model"]:
        meta["base_model"] = model["base_model"]
    meta.update({"library_name": model["library_name"], "pipeline_tag": model["pipeline_tag"],
                 "tags": _tags(lineage, *extra)})
    hub_sources = [d["repo"] for d in lineage.datasets() if d.get("repo") and not d.get("local")]
    if hub_sources:
        meta["datasets"] = hub_sources
    if model["examples"]:
        meta["widget"] = [{"text": text} for text in model["examples"]]
    return meta
