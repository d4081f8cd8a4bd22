"""`python -m dreammake.gen_worker FOLDER [SHARD]`: one shard of a prompt rule's generation (see
`dreammake.llm.remote` for the request folder it serves).

The shard comes from the command line or, in a Slurm array job, from `SLURM_ARRAY_TASK_ID`. The worker
rebuilds the job from the Dreamfile (`--config` values from the environment), finds the model each batch
names among the rule's models by its cache identity, loads it once (placed over the rule's `gpus` per shard,
`backend.place(n)`, where the backend has it; without `gpus` the backend picks its device as in-process), and
answers its rows into its spool. It never opens the
state database. On a failure it writes `shard-<i>.error.json` (the coordinator reports it) and exits 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from dreammake.errors import DreamError
from dreammake.jsonfiles import write_json
from dreammake.llm.handle import LLM
from dreammake.llm.remote import Session, error_path, serve
from dreammake.worker import rebuild_job


class Models:
    """The rule's models by cache identity hash, each backend made and placed once."""

    def __init__(self, session: Session):
        self.session = session
        self._models: dict[str, LLM] | None = None
        self._backends: dict[str, Any] = {}

    def backend(self, model_hash: str) -> Any:
        """The loaded backend of the model a batch names."""
        if model_hash not in self._backends:
            model = self._by_hash().get(model_hash)
            if model is None:
                raise DreamError(f"rule {self.session.rule!r}: its model changed in the Dreamfile after the job"
                                 " started", hint="run dreammake again")
            backend = model.backend()
            if self.session.gpus and hasattr(backend, "place"):  # the shard's own GPUs (CUDA_VISIBLE_DEVICES)
                backend.place(self.session.gpus)
            self._backends[model_hash] = backend
        return self._backends[model_hash]

    def _by_hash(self) -> dict[str, LLM]:
        if self._models is None:
            job, _ = rebuild_job(self.session.dreamfile, self.session.rule, self.session.wildcards)
            action = job.rule.action
            found = [m for _, m in action.models()] if hasattr(action, "models") else []
            self._models = {m.cache_identity_hash(): m for m in found if isinstance(m, LLM)}
        return self._models

    def close(self) -> None:
        for model in (self._models or {}).values():
            model.close()


def main(argv: list[str] | None = None) -> int:
    """Serve one shard of the request folder given as the first argument; exit 0 when every batch was answered."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m dreammake.gen_worker FOLDER [SHARD]", file=sys.stderr)
        return 2
    folder = os.path.abspath(args[0])
    shard = int(args[1]) if len(args) == 2 else int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    session = Session.load(folder)
    os.chdir(session.root)
    models = Models(session)
    try:
        answered = serve(folder, shard, models.backend, log=lambda text: print(text, flush=True))
    except Exception as exc:
        traceback.print_exc()
        message = exc.one_line() if isinstance(exc, DreamError) else f"{type(exc).__name__}: {exc}"
        write_json(error_path(folder, shard), {"error": message})
        return 1
    finally:
        models.close()
    print(f"shard {shard}: done, {answered} row(s) answered", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
