"""One content identity for models: weights rewritten in place (same size) change every backend's identity;
an embedder folder built by the Dreamfile is an input edge of the rules that use it."""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq


def _rewrite_same_size(path: str) -> None:
    """Change bytes in the middle of a file without changing its size (a new mtime, as any real write gives)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        old = f.read(16)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in old))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert os.path.getsize(path) == size


def _fake_model(folder) -> str:
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write('{"model_type": "llama"}')
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(os.urandom(1 << 20) * 70)  # 70 MiB: bigger than any "hash only small files" shortcut
    return str(folder)


def test_vllm_identity_follows_weights_rewritten_at_the_same_size(tmp_path):
    from dreammake.llm.vllm_backend import VLLMBackend  # identity() needs no vLLM

    folder = _fake_model(tmp_path / "m")
    before = VLLMBackend(folder).identity()
    _rewrite_same_size(os.path.join(folder, "model.safetensors"))
    assert VLLMBackend(folder).identity() != before


def test_transformers_identity_follows_weights_rewritten_at_the_same_size(tmp_path):
    from dreammake.llm.transformers_backend import TransformersBackend

    folder = _fake_model(tmp_path / "m")
    before = TransformersBackend(folder).identity()
    _rewrite_same_size(os.path.join(folder, "model.safetensors"))
    assert TransformersBackend(folder).identity() != before


EMBED = """
rule("docs", output="t/docs.parquet", run=lambda: [{"text": "a cat"}, {"text": "a dog"}])
rule("vectors", input="t/docs.parquet", output="t/vectors.parquet",
     run=rules.embed(model=MODEL, input_column="text"))
"""


def test_embedder_weights_rewritten_at_the_same_size_make_the_rule_stale(project, minilm):
    folder = str(project.root / "encoder")
    shutil.copytree(minilm, folder)
    project.dreamfile(EMBED.replace("MODEL", repr(folder)))
    project.run()
    assert project.run("-q", code=0) == ""
    _rewrite_same_size(os.path.join(folder, "model.safetensors"))
    assert "vectors\tt/vectors.parquet\tmodel: model changed" in project.run("-n")
    project.run("-q", code=1)


def test_an_embedder_built_by_the_dreamfile_is_an_input_edge(project, minilm):
    project.dreamfile(f"""
import shutil

def encoder(output, params):
    shutil.copytree({minilm!r}, output, dirs_exist_ok=True)
    with open(output + "/NOTE.txt", "w") as f:
        f.write(params["note"])

rule("encoder", output="models/enc/", params={{"note": config.get("note", "v1")}}, run=encoder)
enc = target("models/enc/")
""" + EMBED.replace("MODEL", "enc"))
    plan = project.plan()
    assert plan == {"docs": "missing", "encoder": "missing", "vectors": "missing"}
    project.run()
    vectors = pq.read_table(project.root / "t" / "vectors.parquet")
    assert vectors.column("embedding").type == pa.list_(pa.float32())
    plan = project.plan("--config", "note=v2")
    assert plan == {"encoder": "params", "vectors": "input"}


def test_cards_and_training_logs_are_not_a_checkpoints_content(tmp_path):
    """Two builds of one recipe write the same weights but other timings, paths and card dates: the same model."""
    from dreammake.content import weights_hash
    from dreammake.filehash import Hasher

    class NoState:
        def file_hashes(self):
            return {}

        def remember_file(self, *args):
            pass

    folders = []
    for run in ("first", "second"):
        folder = tmp_path / run
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"same weights")
        (folder / "dreammake-base.txt").write_text("smollm2-135m-instruct")
        (folder / "training_args.json").write_text(f'{{"runtime_s": 1.{len(run)}, "output": "{folder}"}}')
        (folder / "train.log").write_text(f"log of the {run} build")
        (folder / "README.md").write_text(f"card written on day {run}")
        folders.append(str(folder))
    assert weights_hash(folders[0]) == weights_hash(folders[1])
    hasher = Hasher(NoState())
    assert hasher.folder_hash(folders[0]) == hasher.folder_hash(folders[1])
    (tmp_path / "second" / "dreammake-base.txt").write_text("another base")  # what loads it: content
    assert weights_hash(folders[0]) != weights_hash(folders[1])
