"""Worker entry point: ``python -m <package>.worker <spec.json>`` (one per process; torch.distributed.run
starts several). Only rank 0 writes the output folder and the result file."""

from __future__ import annotations

import importlib
import logging
import os
import sys

from .spec import Spec, rank, world_size

KIND_MODULES = {
    "sft": "sft",
    "dpo": "preference",
    "reward": "preference",
    "grpo": "grpo",
    "classifier": "classifier",
    "embedding": "embedding",
}


def run(spec: Spec) -> dict:
    """Seed everything, then train with the kind's module."""
    from .common import seed_everything

    seed_everything(spec)
    module = importlib.import_module(f".{KIND_MODULES[spec.kind]}", __package__)
    fn = getattr(module, f"train_{spec.kind}", None) or module.train
    return fn(spec)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python -m {__package__}.worker SPEC.json", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=logging.INFO if rank() == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank()}/{world_size()}] %(name)s: %(message)s",
    )
    spec = Spec.from_file(argv[1])
    with open(os.path.join(spec.work_dir, f"worker-{rank()}.pid"), "w", encoding="utf-8") as fh:
        fh.write(str(os.getpid()))
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    summary = run(spec)
    if rank() == 0:
        logging.getLogger(__name__).info("finished: %s", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
