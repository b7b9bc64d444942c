"""Everything RecBole 1.2.1 needs to run on today's stack, in one place. Import before recbole.

- numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``, which RecBole's Config touches
  (``compatibility_settings``): restore them as aliases of their numpy 2 names.
- pandas 3 breaks RecBole's ``Series.agg(len)`` and column ``fillna(inplace=True)``: pyproject pins
  ``pandas<3``, the honest fix.
- torch >= 2.6 loads checkpoints with ``weights_only=True``; RecBole's checkpoints hold its Config, so
  the adapter loads the best checkpoint itself with ``weights_only=False`` (its own file, trusted) and
  never asks RecBole to.
- recbole pins ``ray<=2.6.3`` but imports ray only in ``recbole.quick_start``, which we never import;
  it is installed with ``--no-deps``.

Imported by ``baselines.recbole_adapter`` at module level, so it holds in every Ray worker that runs a trial.
"""

from __future__ import annotations

import warnings

import numpy as np

warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")

for _old, _new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
    if not hasattr(np, _old):
        setattr(np, _old, getattr(np, _new))
