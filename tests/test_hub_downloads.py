"""Hub models and datasets downloaded when online, from the local Hub server (tests/hub_server.py via HF_ENDPOINT):
a notice with the size first, pinned to the commit the cache holds (a new commit on the Hub changes nothing until it
is asked for), the sha in identities and cards, one error line offline naming `dreammake fetch`, gated repos through
the user's token (never written anywhere)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_server import HubServer
from ux_helpers import assert_one_error_line

from dreammake.llm.registry import backend_kind

TOKEN = "hf_" + "k3y" * 10


@pytest.fixture(scope="session")
def tiny_lm(minilm, tmp_path_factory) -> dict[str, bytes]:
    """A randomly initialised one-layer Llama with MiniLM's tokenizer and a chat template: its files' bytes."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    dest = tmp_path_factory.mktemp("tiny-lm")
    tok = AutoTokenizer.from_pretrained(minilm)
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                         bos_token_id=tok.cls_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(dest)
    tok.save_pretrained(dest)
    return {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()}


@pytest.fixture
def hub():
    with HubServer(TOKEN) as server:
        yield server


def parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


class Online:
    """Runs `python -m dreammake` in a project folder against the local Hub, with its own Hugging Face home."""

    def __init__(self, root: Path, hub: HubServer):
        self.root, self.hub = root, hub
        self.hf_home = root / "hf-home"

    def dreamfile(self, text: str) -> None:
        (self.root / "Dreamfile").write_text(text)

    def run(self, *args: str, code: int = 0, offline: bool = False, hf_home: Path | None = None,
            token: str | None = None) -> str:
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
        env.update(HF_ENDPOINT=self.hub.url, HF_HOME=str(hf_home or self.hf_home), TOKENIZERS_PARALLELISM="false")
        if offline:
            env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        if token:
            env["HF_TOKEN"] = token
        proc = subprocess.run([sys.executable, "-m", "dreammake", *args], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == code, f"exit {proc.returncode} != {code}\n{out}"
        return out

    def api_calls(self) -> int:
        """Requests about repos (info, trees, files) so far."""
        return sum(1 for _m, path, _a in self.hub.requests if path != "/api/agent-harnesses")


def card_revision(p: Online, target: str, what: str) -> str:
    """The revision a target's card gives its first model or dataset."""
    return json.loads(p.run("card", target, "--format", "json"))["lineage"][what][0]["revision"]


PROMPT = """
m = llm("acme/tiny{rev}", max_tokens=3)
rule("q", output="t/q.parquet", run=rules.rows([{{"q": "hello"}}, {{"q": "tides"}}]))
rule("a", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=m, input_column="q", output_column="a"))
"""


def test_a_hub_model_downloads_once_is_pinned_and_runs_offline(tmp_path, hub, tiny_lm):
    sha1 = hub.push("model", "acme/tiny", tiny_lm)
    p = Online(tmp_path, hub)
    p.dreamfile(PROMPT.format(rev=""))
    out = p.run()
    assert f"dreammake: downloading model acme/tiny@{sha1[:12]} from {hub.url}: {len(tiny_lm)} file(s)" in out
    assert "2 job(s) run" in out and hub.downloads["model:acme/tiny"] == len(tiny_lm)
    assert card_revision(p, "t/a.parquet", "models") == sha1
    assert f"via transformers @ `{sha1}`" in (tmp_path / "t/a.README.md").read_text()

    sha2 = hub.push("model", "acme/tiny", {"README.md": b"# tiny\n"}, summary="add a card")
    calls = p.api_calls()
    assert "0 job(s) to run" in p.run("-n")  # the new commit changes nothing: the cache's pin holds
    assert p.api_calls() == calls
    assert "0 job(s) to run" in p.run("-n", offline=True)

    out = p.run("fetch", "hf:acme/tiny")  # moves the pin to the Hub's main, downloading what is new
    assert f"downloading model acme/tiny@{sha2[:12]}" in out and "1 file(s)" in out
    assert f"hf:acme/tiny: pinned to {sha2}" in out
    assert "a\tt/a.parquet\tmodel: model changed" in p.run("-n", offline=True)  # the commit changed
    assert "1 job(s) run" in p.run(offline=True)
    assert card_revision(p, "t/a.parquet", "models") == sha2

    # an older commit, asked for by its sha, is still in the cache (and the file its build wrote is adopted)
    p.dreamfile(PROMPT.format(rev=f"@{sha1}"))
    p.run(offline=True)
    assert card_revision(p, "t/a.parquet", "models") == sha1

    p.dreamfile(PROMPT.format(rev=""))
    line = assert_one_error_line(p.run("-n", offline=True, hf_home=tmp_path / "empty", code=2))
    assert "model acme/tiny is not in the local Hugging Face cache" in line
    assert "run `dreammake fetch hf:acme/tiny` while online" in line


def test_a_hub_dataset_is_pinned_until_fetched(tmp_path, hub):
    sha1 = hub.push("dataset", "acme/qs", {"data/train-00000-of-00001.parquet": parquet([{"q": "a?"}, {"q": "b?"}])})
    p = Online(tmp_path, hub)
    p.dreamfile('rule("qs", output="t/qs.parquet", run=rules.hf_dataset("acme/qs"))\n')
    out = p.run()
    assert f"dreammake: downloading dataset acme/qs@{sha1[:12]} from {hub.url}: 1 file(s)" in out
    assert pq.read_table(tmp_path / "t/qs.parquet").column("q").to_pylist() == ["a?", "b?"]
    assert card_revision(p, "t/qs.parquet", "datasets") == sha1

    sha2 = hub.push("dataset", "acme/qs", {"data/train-00000-of-00001.parquet": parquet([{"q": "c?"}])})
    assert "0 job(s) to run" in p.run("-n")
    assert "0 job(s) to run" in p.run("-n", offline=True)
    assert "1 job(s) run" in p.run("-F", offline=True)  # rebuilt from the prepared copy, offline
    assert f"hf:datasets/acme/qs: pinned to {sha2}" in p.run("fetch")  # the Dreamfile's Hub repos
    assert "1 job(s) run" in p.run(offline=True)
    assert pq.read_table(tmp_path / "t/qs.parquet").column("q").to_pylist() == ["c?"]

    p.dreamfile(f'rule("qs", output="t/qs.parquet", run=rules.hf_dataset("acme/qs", revision="{sha1[:10]}"))\n')
    assert "1 job(s) run" in p.run(offline=True)  # that commit is still prepared in the cache
    assert pq.read_table(tmp_path / "t/qs.parquet").column("q").to_pylist() == ["a?", "b?"]

    out = p.run("-F", offline=True, hf_home=tmp_path / "empty", code=2)
    assert f"dataset acme/qs@{sha1[:10]} is not in the local Hugging Face cache and downloads are off" in out
    assert f"run `dreammake fetch hf:datasets/acme/qs@{sha1[:10]}` while online" in out


def test_a_gated_repo_needs_the_token_which_is_never_written(tmp_path, hub):
    hub.push("dataset", "acme/gated", {"data/train.parquet": parquet([{"q": "secret?"}])}, gated=True)
    p = Online(tmp_path, hub)
    p.dreamfile('rule("g", output="t/g.parquet", run=rules.hf_dataset("acme/gated"))\n')
    line = assert_one_error_line(p.run("-n", code=2))
    assert "dataset acme/gated: the repo is gated" in line and "HF_TOKEN" in line
    assert "1 job(s) run" in p.run(token=TOKEN)
    assert any(auth == f"Bearer {TOKEN}" for _m, _p, auth in hub.requests)
    for folder, _dirs, names in os.walk(tmp_path):
        for name in names:
            assert TOKEN.encode() not in (Path(folder) / name).read_bytes(), Path(folder) / name


@pytest.mark.parametrize(("spec", "kind"), [
    ("acme/tiny", "transformers"),  # a Hub model, not an API
    ("HuggingFaceTB/SmolLM2-135M-Instruct@main", "transformers"),
    ("anthropic/claude-3-5-haiku-latest", "litellm"),
    ("bedrock/anthropic.claude-v2", "litellm"),
    ("hosted_vllm/my-model", "openai_http"),
    ("openai/gpt-4o-mini", "openai_http"),
])
def test_a_bare_org_name_is_the_hub_unless_its_org_is_a_litellm_provider(spec, kind):
    assert backend_kind(spec) == kind


def test_the_online_example_runs_against_the_hub(tmp_path, hub, tiny_lm):
    """examples/online_quickstart as an online user runs it: Hub names only, everything downloaded on first use."""
    example = Path(__file__).parent.parent / "examples" / "online_quickstart"
    (tmp_path / "examples" / "online_quickstart").mkdir(parents=True)
    shutil.copy(example / "Dreamfile", tmp_path / "examples" / "online_quickstart" / "Dreamfile")
    model_sha = hub.push("model", "acme/tiny", tiny_lm)
    data_sha = hub.push("dataset", "acme/squadish", {
        "data/validation-00000-of-00001.parquet": parquet([{"question": f"q{i}?", "id": i} for i in range(30)]),
        "data/train-00000-of-00001.parquet": parquet([{"question": "train?", "id": -1}])})
    p = Online(tmp_path, hub)
    args = ("-f", "examples/online_quickstart/Dreamfile", "--config", "model=acme/tiny",
            "--config", "dataset=acme/squadish")
    out = p.run(*args)
    assert f"downloading model acme/tiny@{model_sha[:12]}" in out
    assert f"downloading dataset acme/squadish@{data_sha[:12]}" in out
    rows = pq.read_table(tmp_path / "examples/online_quickstart/targets/answers.parquet").to_pylist()
    assert [r["id"] for r in rows] == list(range(20)) and all(isinstance(r["answer"], str) for r in rows)
    assert "0 job(s) to run" in p.run("-n", *args, offline=True)
