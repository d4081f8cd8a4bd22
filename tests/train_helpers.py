"""Assertions shared by the training tests."""

from __future__ import annotations

import json
import math
import os

import pyarrow.parquet as pq

from dreammake.rules.train.common import COMPLETE_MARKER, METRIC_COLUMNS


def check_output(out: str) -> list[dict]:
    assert os.path.exists(os.path.join(out, COMPLETE_MARKER))
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):  # only dreammake's card, rendered after training; never TRL's own README
        with open(readme) as fh:
            assert "dreammake" in fh.read()
    with open(os.path.join(out, "training_args.json")) as fh:
        args = json.load(fh)
    assert args["trainer_args"]["logging_steps"] == 1
    table = pq.read_table(os.path.join(out, "metrics.parquet"))
    for col in METRIC_COLUMNS:
        assert col in table.column_names, col
    return table.to_pylist()


def losses(rows: list[dict]) -> list[float]:
    return [r["train_loss"] for r in rows if r["train_loss"] is not None and math.isfinite(r["train_loss"])]


def assert_loss_down(result: dict, rows: list[dict]) -> None:
    ls = losses(rows)
    assert len(ls) >= 2, rows
    assert ls[-1] < ls[0], ls
    assert result["train_loss"] == ls[-1]
    assert result["tokens"] > 0 and result["tokens_per_second"] > 0
