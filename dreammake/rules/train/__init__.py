"""Training rules for dreammake: ``run_training(kind, options, inputs, output_dir, work_dir)``."""

from .api import KINDS, TrainingError, run_training
from .spec import COMPLETE_MARKER

__all__ = ["COMPLETE_MARKER", "KINDS", "TrainingError", "run_training"]
