"""`dreammake publish` / `export` against a local Hub server (tests/hub_server.py, via HF_ENDPOINT):
the expected files arrive, and the token is sent to the Hub but never written or printed."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hub_server import HubServer
from test_cards import make_workflow, run_cards, write_all_cards

MODEL_FILES = {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "README.md",
               "dreammake-card.json"}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub.constants

    token = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # tests run offline otherwise
    with HubServer(token) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def files_containing(root: Path, needle: bytes) -> list[str]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                if needle in f.read():
                    found.append(path)
    return found


def test_publish_dataset_and_checkpoint_without_leaking_the_token(tmp_path: Path, hub: HubServer) -> None:
    from huggingface_hub import DatasetCard, ModelCard

    project = make_workflow(tmp_path / "project")
    project.run()
    write_all_cards(project.root)
    root = project.root
    token = hub.token
    output = []

    output.append(run_cards(root, "publish", "splits", "--repo", "me/tweets", "--dry-run"))
    assert hub.requests == []  # a dry run talks to nobody
    assert "data/train.parquet" in output[-1] and "dreammake-card.json" in output[-1]

    output.append(run_cards(root, "publish", "targets/splits/train.parquet", "--repo", "me/tweets"))
    repo = hub.repo("dataset", "me/tweets")
    assert set(repo.files) == {"data/train.parquet", "data/validation.parquet", "README.md", "dreammake-card.json"}
    assert repo.files["data/train.parquet"] == (root / "targets/splits/train.parquet").read_bytes()
    assert not repo.private and repo.commits == ["dreammake publish splits"]
    meta = DatasetCard(repo.files["README.md"].decode()).data.to_dict()
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train.parquet"},
                                                {"split": "validation", "path": "data/validation.parquet"}]
    assert 'load_dataset("me/tweets")' in repo.files["README.md"].decode()
    assert all(auth == f"Bearer {token}" for _, _, auth in hub.requests)

    output.append(run_cards(root, "publish", "models/tweet-model/", "--repo", "me/tweet-model", "--private"))
    model = hub.repo("model", "me/tweet-model")
    assert set(model.files) == MODEL_FILES and model.private
    meta = ModelCard(model.files["README.md"].decode()).data.to_dict()
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["library_name"] == "peft"
    assert 'from_pretrained("me/tweet-model")' in model.files["README.md"].decode()

    output.append(run_cards(root, "export", "tweet_model", str(tmp_path / "export")))
    assert {p.name for p in (tmp_path / "export").iterdir()} == MODEL_FILES

    for text in output:
        assert token not in text
    assert files_containing(tmp_path, token.encode()) == []  # the project, its .dreammake/state.duckdb, the export
    assert token.encode() not in (root / ".dreammake/state.duckdb").read_bytes()
    assert not any(token.encode() in data for r in hub.repos.values() for data in r.files.values())


def test_publish_refuses_files_outside_the_target_and_a_missing_token(tmp_path: Path, hub: HubServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_workflow(tmp_path / "project")
    project.run("tweet_model")
    secret = tmp_path / "outside.txt"
    secret.write_text("not part of the checkpoint")
    os.symlink(secret, project.root / "models/tweet-model/notes.txt")
    out = run_cards(project.root, "publish", "tweet_model", "--repo", "me/m", code=2)
    assert "points outside the target" in out
    assert "is not ORG/NAME" in run_cards(project.root, "publish", "tweet_model", "--repo", "m e", code=2)
    os.remove(project.root / "models/tweet-model/notes.txt")

    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))  # nor a login
    out = run_cards(project.root, "publish", "targets/tweets.parquet", "--repo", "me/t", code=2)
    assert "no Hugging Face token" in out
    assert hub.requests == []
    export = tmp_path / "export"
    run_cards(project.root, "export", "targets/tweets.parquet", str(export))
    assert pq.read_table(export / "data/train.parquet").num_rows == 1500
    assert (export / "README.md").read_text().startswith("---\nlicense: other\n")
