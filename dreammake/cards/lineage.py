"""Lineage of a target: every upstream rule with its kind, date, fingerprint, params, models,
source datasets, rows and LLM spend, plus the environment. Built from the job graph and the
state's records only: no model is loaded and nothing is hashed or fetched.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dreammake.actions import is_action
from dreammake.cards.secrets import scrub
from dreammake.known import dataset_info, folder_info, local_dataset_info, model_info
from dreammake.llm.generate import SERVED_STATS

if TYPE_CHECKING:
    from dreammake.graph import Graph, Job
    from dreammake.state import State

LLM_STATS = ("llm_calls", "llm_cached", "prompt_tokens", "completion_tokens", "cost_usd")
HF_SOURCE_KIND = "hf_dataset"  # rules.hf_dataset: params name (Hub id or local folder), config, split, revision
PACKAGES = ("datasets", "pyarrow", "duckdb", "huggingface_hub", "jinja2", "networkx", "torch", "transformers",
            "peft", "trl", "accelerate", "sentence-transformers", "litellm", "vllm")


@dataclass
class Step:
    """One upstream job as a card describes it."""

    name: str
    rule: str
    kind: str
    version: int | None
    where: str
    inputs: list[str]
    outputs: list[dict[str, Any]]
    built_at: str | None
    duration_s: float | None
    fingerprint: str | None
    params: dict[str, Any]
    models: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    rows: int | None
    llm: dict[str, float]
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Lineage:
    """A job and everything upstream of it, upstream first (the job itself is the last step)."""

    steps: list[Step]
    environment: dict[str, Any]

    @property
    def target(self) -> Step:
        return self.steps[-1]

    def models(self) -> list[dict[str, Any]]:
        """Every model used anywhere upstream, once each (first use wins)."""
        return _unique((m for s in self.steps for m in s.models), ("name", "role"))

    def datasets(self) -> list[dict[str, Any]]:
        """Every source dataset read anywhere upstream, once each."""
        return _unique((d for s in self.steps for d in s.datasets), ("name",))

    def totals(self) -> dict[str, float]:
        """LLM calls, cache hits, tokens and cost summed over the steps."""
        return {k: sum(s.llm.get(k, 0) for s in self.steps) for k in LLM_STATS}

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "models": self.models(), "datasets": self.datasets(),
                "totals": self.totals(), "environment": self.environment}


def _unique(items: Any, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in items:
        seen.setdefault(tuple(item.get(k) for k in keys), item)
    return list(seen.values())


def upstream(job: Job) -> list[Job]:
    """The job and every job it depends on, in topological order."""
    found: dict[int, Job] = {}
    stack = [job]
    while stack:
        j = stack.pop()
        if id(j) not in found:
            found[id(j)] = j
            stack.extend(j.deps)
    return sorted(found.values(), key=lambda j: j.index)


def trace(graph: Graph, state: State, job: Job, details: dict[str, dict[str, Any]] | None = None) -> Lineage:
    """The lineage of `job` (pass `details` from `state.target_details()` to reuse one query for many cards)."""
    jobs = [j for j in upstream(job) if not j.rule.is_phony]
    if details is None:
        details = state.target_details([p for j in jobs for p in j.output_paths])
    hashes = state.file_hashes()
    steps = [describe(j, graph, details, hashes) for j in jobs]
    return Lineage(steps, dict(environment()))


def describe(job: Job, graph: Graph, details: dict[str, dict[str, Any]],
             hashes: dict[str, tuple[str, str]]) -> Step:
    """One job as a card step."""
    action = job.rule.action
    kind = action.kind if is_action(action) else "function"
    records = [details.get(p) or {} for p in job.output_paths]
    first = records[0] if records else {}
    stats = first.get("stats") or {}
    outputs = [{"key": name, "path": path, "rows": rec.get("rows"), "content_hash": rec.get("content_hash"),
                "folder": i in job.rule.folders}
               for i, ((name, path), rec) in enumerate(zip(job.outputs, records))]
    params = params_of(job)
    datasets = [_source(p, hashes) for p in job.input_paths if p in graph.sources]
    if kind == HF_SOURCE_KIND and isinstance(params.get("name"), str):
        revision = params.get("commit") or params.get("revision")  # a Hub dataset's pinned commit
        datasets.append({**dataset_info(params["name"], revision), "config": params.get("config"),
                         "split": params.get("split")})
    rows = [r.get("rows") for r in records if r.get("rows") is not None]
    built = first.get("built_at")
    return Step(
        name=job.name, rule=job.rule.name, kind=kind, version=action.version if is_action(action) else None,
        where=job.rule.where, inputs=list(job.input_paths), outputs=outputs,
        built_at=built.isoformat(timespec="seconds") + "Z" if built is not None else None,
        duration_s=first.get("duration_s"), fingerprint=first.get("fingerprint"), params=params,
        models=models_of(action, graph), datasets=datasets, rows=sum(rows) if rows else None,
        llm={k: stats[k] for k in (*LLM_STATS, *SERVED_STATS) if k in stats},  # SERVED: what the API said answered
        training={k[6:]: v for k, v in stats.items() if k.startswith("train_")},
    )


def params_of(job: Job) -> dict[str, Any]:
    """The settings of a job's action as plain data (secrets removed)."""
    from dreammake.fingerprint import canonical

    action = job.rule.action
    params: dict[str, Any] = {}
    if is_action(action):
        try:
            params.update(action.params())
            bases = [str(model) for role, model in action.models() if role == "base model"]
        except Exception as exc:  # a broken action must not stop the card
            params["error"] = f"{type(exc).__name__}: {exc}"
        else:
            if bases:
                params.setdefault("base", bases[0])
    elif callable(action):
        params["function"] = getattr(action, "__qualname__", type(action).__name__)
    if job.rule.params:
        params["rule_params"] = job.rule.params
    if job.wildcards:
        params["wildcards"] = job.wildcards
    try:
        plain = json.loads(canonical(params))
    except (TypeError, ValueError):
        plain = {k: repr(v) for k, v in params.items()}
    return scrub(plain)


def models_of(action: Any, graph: Graph) -> list[dict[str, Any]]:
    """Card facts for the models an action says it uses (`Action.models()`); a user function names none."""
    from dreammake.llm.handle import LLM
    from dreammake.paths import normalize

    found: list[dict[str, Any]] = []
    for role, model in action.models() if is_action(action) else []:
        if isinstance(model, LLM):
            found.append({**describe_llm(model, graph), "role": role})
        elif normalize(model) in graph.producer:  # a checkpoint this Dreamfile trains (a `target(...)`)
            found.append({**target_model(normalize(model), graph), "role": role})
        else:
            found.append({**model_info(model), "role": role})
    return _unique(found, ("name", "role"))


def describe_llm(handle: Any, graph: Graph) -> dict[str, Any]:
    """Card facts for an `llm(...)` handle, from its spec and (if already computed) its identity."""
    if handle.target is not None:
        return target_model(handle.target, graph)
    identity = handle.known_identity()  # never computed here: that may load weights
    if identity is None and hasattr(handle.spec, "identity"):  # a Backend object knows its identity cheaply
        identity = handle.spec.identity()
    identity = identity or {}
    name = handle.name
    from dreammake.hub import pinned_model_commit

    revision = handle.options.get("revision") or identity.get("revision") or pinned_model_commit(name)
    info = model_info(name, identity.get("backend"), revision)
    if info["source"] == "unknown" and isinstance(identity.get("model"), str) and identity["model"] != name:
        info = {**model_info(identity["model"], identity.get("backend"), revision), "name": name}
    return info


def target_model(path: str, graph: Graph) -> dict[str, Any]:
    """A checkpoint built by this Dreamfile, used as a model."""
    producer = graph.producer.get(path)
    info = folder_info(path, "model") if os.path.isdir(path) else {"license": "unknown", "source": "unknown"}
    return {"name": path, "backend": "target", "revision": None, "repo": None, "organization": None,
            "license_link": None, "card_url": None, "citation": None, **info,
            "trained_by": producer.rule.name if producer is not None else None}


def _source(path: str, hashes: dict[str, tuple[str, str]]) -> dict[str, Any]:
    cached = hashes.get(path)
    return {"name": path, "revision": None, **local_dataset_info(path), "content_hash": cached[1] if cached else None,
            "local": True}


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Interpreter, platform and the versions of dreammake and its key packages (those installed; read once)."""
    from importlib import metadata

    from dreammake import __version__

    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(terse=True), "dreammake": __version__, "packages": packages}
