"""Mixed precision of the training loops: now in :mod:`model.precision`."""
from model.precision import PRECISIONS, autocast_context
from model.precision import training_autocast_dtype as resolve_precision

__all__ = ["PRECISIONS", "autocast_context", "resolve_precision"]
