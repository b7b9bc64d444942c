"""Everything RecBole 1.2.1 needs to run on today's stack, in one place. Import before recbole.

- numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``, which RecBole's Config touches
  (``compatibility_settings``): restore them as aliases of their numpy 2 names.
- pandas 3 breaks RecBole's ``Series.agg(len)`` and column ``fillna(inplace=True)``: pyproject pins
  ``pandas<3``, the honest fix.
- torch >= 2.6 loads checkpoints with ``weights_only=True``; RecBole's checkpoints hold its Config, so
  the adapter loads the best checkpoint itself with ``weights_only=False`` (its own file, trusted) and
  never asks RecBole to.
- importing ``recbole.model.sequential_recommender`` runs ``sine.py``, which calls
  ``torch.autograd.set_detect_anomaly(True)`` for the whole process: every autograd node then records
  its Python stack and every backward checks for NaN, which made a SASRec epoch on ml-100k about 4x slower
  (and every method trained later in the same process). ``sequential_models`` imports the package and
  switches it off again.
- recbole pins ``ray<=2.6.3`` but imports ray only in ``recbole.quick_start``, which we never import;
  it is installed with ``--no-deps``.

Imported by ``baselines.recbole_adapter`` at module level, so it holds in every Ray worker that runs a trial.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")

for _old, _new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
    if not hasattr(np, _old):
        setattr(np, _old, getattr(np, _new))


def sequential_models() -> None:
    """Import ``recbole.model.sequential_recommender``, then switch off the autograd anomaly detection
    its import turns on."""
    importlib.import_module("recbole.model.sequential_recommender")
    torch.autograd.set_detect_anomaly(False)
