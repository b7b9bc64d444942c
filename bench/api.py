"""Everything a method needs from the harness, in one import (docs/plugins.md)::

    from bench.api import Examples, Method, Predictions, TrialContext, register_method

A method fits on ``ctx.train`` and predicts for the examples it is handed; the harness owns the data,
the split, validation, metrics and the record. The building blocks methods share (training loop,
encoders, LLM code) are ``bench.models``: train with ``bench.models.training.train`` and its examples,
FLOPs, validation checks and early stopping are counted like every other method's.
"""

from bench.context import Budget, Pretraining, TrialContext
from bench.data.windows import Examples
from bench.errors import ConfigError
from bench.evaluation import Predictions
from bench.registry import INPUTS, SUPERVISION, Method, NoParams, register_method

__all__ = ["INPUTS", "SUPERVISION", "Budget", "ConfigError", "Examples", "Method", "NoParams", "Predictions",
           "Pretraining", "TrialContext", "register_method"]
