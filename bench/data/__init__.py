"""Datasets in one canonical form, and the per-user windows built on them."""

from bench.data.dataset import Dataset
from bench.data.registry import DATASETS, load_dataset
from bench.data.windows import Examples, Split, build_split

__all__ = ["DATASETS", "Dataset", "Examples", "Split", "build_split", "load_dataset"]
