"""What a card says about a model or dataset: license, card URL, citation. Never a network call.

Looked up in order: a small registry of well-known models, datasets and API providers; a local
folder's README.md (YAML front matter, a ```bibtex block); the local Hugging Face cache's copy of
a Hub card; else "unknown".
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Any

from dreammake.hfcache import hub_cache
from dreammake.targets import CheckpointFolder

HUB = "https://huggingface.co"
UNKNOWN = "unknown"

SMOLLM2_CITATION = """@misc{benallal2025smollm2,
  title = {SmolLM2: When Smol Goes Big -- Data-Centric Training of a Small Language Model},
  author = {Ben Allal, Loubna and Lozhkov, Anton and Bakouch, Elie and others},
  year = {2025},
  eprint = {2502.02737},
  archivePrefix = {arXiv}
}"""
SBERT_CITATION = """@inproceedings{reimers2019sentencebert,
  title = {Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks},
  author = {Reimers, Nils and Gurevych, Iryna},
  booktitle = {Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing},
  year = {2019},
  eprint = {1908.10084},
  archivePrefix = {arXiv}
}"""
SQUAD_CITATION = """@inproceedings{rajpurkar2016squad,
  title = {SQuAD: 100,000+ Questions for Machine Comprehension of Text},
  author = {Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle = {Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing},
  year = {2016}
}"""
GSM8K_CITATION = """@article{cobbe2021gsm8k,
  title = {Training Verifiers to Solve Math Word Problems},
  author = {Cobbe, Karl and Kosaraju, Vineet and Bavarian, Mohammad and others},
  journal = {arXiv preprint arXiv:2110.14168},
  year = {2021}
}"""
ALPACA_CITATION = """@misc{taori2023alpaca,
  title = {Stanford Alpaca: An Instruction-following LLaMA model},
  author = {Taori, Rohan and Gulrajani, Ishaan and Zhang, Tianyi and others},
  year = {2023},
  howpublished = {GitHub repository}
}"""


@dataclass(frozen=True)
class Known:
    """A model or dataset whose license and citation we know without asking the network."""

    repo: str
    license: str
    org: str
    citation: str | None = None


@dataclass(frozen=True)
class Provider:
    """An API provider: its models come under its terms of use."""

    org: str
    prefixes: tuple[str, ...]
    terms: str
    docs: str


MODELS: dict[str, Known] = {
    "huggingfacetb/smollm2-135m-instruct": Known("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0",
                                                 "HuggingFaceTB", SMOLLM2_CITATION),
    "huggingfacetb/smollm2-360m-instruct": Known("HuggingFaceTB/SmolLM2-360M-Instruct", "apache-2.0",
                                                 "HuggingFaceTB", SMOLLM2_CITATION),
    "huggingfacetb/smollm2-1.7b-instruct": Known("HuggingFaceTB/SmolLM2-1.7B-Instruct", "apache-2.0",
                                                 "HuggingFaceTB", SMOLLM2_CITATION),
    "sentence-transformers/all-minilm-l6-v2": Known("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0",
                                                    "sentence-transformers", SBERT_CITATION),
}
MODEL_ALIASES = {
    "smollm2-135m-instruct": "huggingfacetb/smollm2-135m-instruct",
    "all-minilm-l6-v2": "sentence-transformers/all-minilm-l6-v2",
}
DATASETS: dict[str, Known] = {
    "rajpurkar/squad": Known("rajpurkar/squad", "cc-by-sa-4.0", "rajpurkar", SQUAD_CITATION),
    "openai/gsm8k": Known("openai/gsm8k", "mit", "openai", GSM8K_CITATION),
    "tatsu-lab/alpaca": Known("tatsu-lab/alpaca", "cc-by-nc-4.0", "tatsu-lab", ALPACA_CITATION),
}
DATASET_ALIASES = {"squad": "rajpurkar/squad", "gsm8k": "openai/gsm8k", "alpaca": "tatsu-lab/alpaca"}
PROVIDERS = (
    Provider("OpenAI", ("openai/", "gpt-", "o1", "o3", "o4-", "chatgpt-", "text-embedding-"),
             "https://openai.com/policies/terms-of-use", "https://platform.openai.com/docs/models"),
    Provider("Anthropic", ("anthropic/", "claude-"), "https://www.anthropic.com/legal/commercial-terms",
             "https://docs.anthropic.com/en/docs/about-claude/models"),
    Provider("Google", ("gemini/", "gemini-", "vertex_ai/"), "https://ai.google.dev/gemini-api/terms",
             "https://ai.google.dev/gemini-api/docs/models"),
    Provider("Mistral AI", ("mistral/", "mistral-", "codestral"), "https://mistral.ai/terms",
             "https://docs.mistral.ai/getting-started/models/"),
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BIBTEX = re.compile(r"```(?:bibtex|bib)\s*\n(.*?)```", re.DOTALL)


def _plain(name: str) -> tuple[str, str | None]:
    """`hf:Org/Name@rev` → ("Org/Name", "rev"); other names unchanged."""
    if name.startswith("hf:"):
        name = name[3:]
        if ":" in name:
            name = name.split(":", 1)[0]
        name, _, rev = name.partition("@")
        return name, rev or None
    return name, None


def model_info(name: str, backend: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """Card facts for a model named in a Dreamfile (an alias, hf:ORG/NAME, a folder, an API model)."""
    plain, rev = _plain(name)
    info: dict[str, Any] = {"name": name, "backend": backend, "revision": revision or rev}
    key = MODEL_ALIASES.get(plain.lower(), plain.lower())
    known = MODELS.get(key)
    if known is not None:
        return {**info, "backend": backend or "transformers", **_known(known, HUB)}
    provider = next((p for p in PROVIDERS if plain.lower().startswith(p.prefixes)), None)
    if provider is not None:
        return {**info, "backend": backend or "api", "repo": None, "organization": provider.org,
                "license": "other", "license_link": provider.terms, "card_url": provider.docs, "citation": None,
                "source": "provider terms"}
    folder = plain if os.path.isdir(plain) else (os.path.dirname(plain) or ".") if os.path.isfile(plain) else None
    if folder is not None:
        return {**info, "backend": backend or "transformers", **folder_info(folder, "model")}
    if _HUB_ID.match(plain):
        return {**info, **hub_cache_info(plain, "model")}
    return {**info, **_unknown()}


def dataset_info(name: str, revision: str | None = None) -> dict[str, Any]:
    """Card facts for a source dataset: a Hub dataset id or a local file."""
    plain, rev = _plain(name)
    info: dict[str, Any] = {"name": name, "revision": revision or rev}
    key = DATASET_ALIASES.get(plain.lower(), plain.lower())
    known = DATASETS.get(key)
    if known is not None:
        return {**info, **_known(known, f"{HUB}/datasets")}
    if os.path.exists(plain):
        return {**info, **local_dataset_info(plain)}
    if _HUB_ID.match(plain) or "/" not in plain:
        return {**info, **hub_cache_info(plain, "dataset")}
    return {**info, **_unknown()}


def local_dataset_info(path: str) -> dict[str, Any]:
    """Card facts for a local data file or folder: the README.md beside it (or inside the folder)."""
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    return folder_info(folder, "dataset") if os.path.isdir(folder) else _unknown()


def _known(known: Known, prefix: str) -> dict[str, Any]:
    return {"repo": known.repo, "organization": known.org, "license": known.license, "license_link": None,
            "card_url": f"{prefix}/{known.repo}", "citation": known.citation, "source": "registry"}


def _unknown() -> dict[str, Any]:
    return {"repo": None, "organization": None, "license": UNKNOWN, "license_link": None, "card_url": None,
            "citation": None, "source": UNKNOWN}


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter of a Markdown card (empty if none or invalid) and the body after it."""
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}, text
    body = text[end + 4 :].split("\n", 1)[1] if "\n" in text[end + 4 :] else ""
    return (data if isinstance(data, dict) else {}), body


def readme_facts(path: str) -> dict[str, Any]:
    """License, license link, base model and citation from a README.md (empty when absent)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except OSError:
        return {}
    meta, body = front_matter(text)
    found = _BIBTEX.search(body)
    base = meta.get("base_model")
    return {"license": meta.get("license"), "license_link": meta.get("license_link"),
            "base_model": base[0] if isinstance(base, list) and base else base,
            "citation": found.group(1).strip() if found else None}


def folder_info(folder: str, kind: str) -> dict[str, Any]:
    """Card facts from a local folder: its README.md, else (for an adapter) its base model's."""
    facts = readme_facts(os.path.join(folder, "README.md"))
    base = facts.get("base_model") or CheckpointFolder(folder).adapter_base()
    if not facts.get("license") and base and kind == "model":
        inherited = model_info(base)
        facts = {**facts, "license": inherited["license"], "license_link": inherited["license_link"]}
    return {"repo": None, "organization": None, "license": facts.get("license") or UNKNOWN,
            "license_link": facts.get("license_link"), "card_url": None, "citation": facts.get("citation"),
            "base_model": base, "source": "README.md" if facts else UNKNOWN}


def hub_cache_info(repo: str, kind: str) -> dict[str, Any]:
    """Card facts from a Hub card already in the local cache; the card URL is known either way."""
    url = f"{HUB}/{repo}" if kind == "model" else f"{HUB}/datasets/{repo}"
    folder = os.path.join(hub_cache(), f"{kind}s--{repo.replace('/', '--')}", "snapshots", "*", "README.md")
    readmes = sorted(glob.glob(folder), key=os.path.getmtime)
    facts = readme_facts(readmes[-1]) if readmes else {}
    return {"repo": repo, "organization": repo.split("/")[0] if "/" in repo else None,
            "license": facts.get("license") or UNKNOWN, "license_link": facts.get("license_link"),
            "card_url": url, "citation": facts.get("citation"),
            "source": "hub cache" if facts.get("license") else UNKNOWN}


def hub_id(name: str) -> str | None:
    """The Hub repo id of a model name when known (for `base_model:`), else None."""
    plain, _ = _plain(name)
    known = MODELS.get(MODEL_ALIASES.get(plain.lower(), plain.lower()))
    if known is not None:
        return known.repo
    return plain if _HUB_ID.match(plain) and not os.path.exists(plain) else None
