"""The coordinator's view of a training worker's `train_log.jsonl` (no torch)."""

from __future__ import annotations

import json

from dreammake.rules.train.api import LogTail


def test_log_tail_delivers_new_complete_lines_only(tmp_path) -> None:
    path = tmp_path / "train_log.jsonl"
    path.write_text(json.dumps({"step": 7, "loss": 1.0}) + "\n")  # a killed run's record: old news
    seen: list[dict] = []
    tail = LogTail(str(path), seen.append)
    with open(path, "a") as f:
        f.write(json.dumps({"step": 1, "loss": 2.5}) + "\n" + '{"step": 2, "lo')
    tail.poll()
    assert seen == [{"step": 1, "loss": 2.5}]  # the torn line waits
    with open(path, "a") as f:
        f.write('ss": 2.0}\n')
    tail.poll()
    assert seen == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]
