"""What the harness hands a method for one trial: data, task, budget, seed, device, progress."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from bench.data.dataset import Dataset
from bench.data.windows import Examples
from bench.memory import batch_size_for
from bench.tasks import Protocol, Scoring, Task
from bench.validation import Validation

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """Training and evaluation budget of a trial (paper appendix table 9 gives full-scale values)."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-3
    warmup: float = 0.1  # fraction of steps with linear warm-up, then cosine decay (paper appendix C)
    eval_batch_size: int | None = None  # None: as many as fit in memory (bench.memory), up to the method's cap
    max_valid_examples: int | None = None  # None: all; a cap is recorded with the results
    max_test_examples: int | None = None
    eval_every: int | None = None  # steps between validation checks (None: one check, after the last step)
    patience: int | None = None  # checks without improvement before stopping (None: never stop early)
    flops: float | None = None  # training FLOPs (counted on the first step): fewer steps where they run out first
    seconds: float | None = None  # a guard, not a budget: a wall-clock cap on the optimisation loop (validation
    # not counted); a run it stops depends on the machine's speed, and its record says so
    timeout: float | None = None  # a guard on the whole trial's wall clock: the harness stops a trial that runs
    # longer and records it as failed (None: 2 x seconds + 30 minutes where seconds is set, else no limit)
    micro_batch_size: int | None = None  # examples per forward/backward: a batch split into micro-batches
    # whose gradients add up to the same update (None: the whole batch at once)
    checkpointing: bool = False  # activation (gradient) checkpointing of the LLM's decoder layers (TextPrompt): less
    # activation memory for one more forward pass per step

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        for name in ("eval_batch_size", "max_valid_examples", "max_test_examples", "eval_every", "patience",
                     "micro_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {value}")
        for name in ("flops", "seconds", "timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or null, got {value}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a mapping; the memory-only fields (``OMITTED_AT_DEFAULT``) only where set, so that
        the ids of trials that do not set them stay what they were before the fields existed."""
        out = dataclasses.asdict(self)
        for name, default in OMITTED_AT_DEFAULT.items():
            if out[name] == default:
                del out[name]
        return out

    def micro_batches(self, index: np.ndarray) -> list[np.ndarray]:
        """``index`` (one training batch) in parts of at most ``micro_batch_size`` examples."""
        size = self.micro_batch_size or len(index)
        return [index[lo:lo + size] for lo in range(0, len(index), size)]


OMITTED_AT_DEFAULT = {"micro_batch_size": None, "checkpointing": False}


@dataclass(frozen=True)
class Pretraining:
    """How a method pretrains a user encoder alone before its own training: the fields of ``Budget`` that
    apply, with the same names (``ar_encoder``'s pretraining is its suite budget). ``bench run --preset
    paper`` sets them from the paper's appendix table 9 in every parameter of this type."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        self.budget()

    def budget(self) -> Budget:
        """The training budget of the pretraining (checked as any budget is)."""
        return Budget(steps=self.steps, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay)


@dataclass
class TrialContext:
    """Everything a method may use, and nothing it is scored on.

    ``dataset`` is a view (``bench.data.views``): in ``fit`` and the validation checks it hides each user's
    validation and test label events; in test predictions it hides the test label events. ``train`` holds
    the training examples; validation and test examples reach a method only as ``predict``'s argument,
    without their labels. A method reads events through the ``ctx`` it is called with, never a dataset
    kept from ``fit`` (that view hides the last input of every test window)."""

    dataset: Dataset
    task: Task
    protocol: Protocol
    train: Examples
    budget: Budget
    seed: int
    device: str = "cpu"
    dtype: str = "float32"
    workdir: Path = Path(".")
    shared_cache: Path = Path(".")
    report: Callable[[dict[str, Any]], None] = field(default=lambda metrics: None)
    show_progress: bool = True
    validation: Validation | None = None  # the harness's checks while training (None: no checks)
    batch_seconds: list[tuple[int, float]] | None = None  # the harness's clock on eval_batches: (size, seconds)

    @property
    def seq_len(self) -> int:
        return self.train.seq_len

    @property
    def scoring(self) -> Scoring:
        """The trial's task under its protocol."""
        return Scoring(self.task, self.protocol)

    def labels(self, examples: Examples) -> np.ndarray:
        """Labels of training ``examples`` for this trial's task (training targets)."""
        if examples.split != "train":
            raise PermissionError(f"ctx.labels gives training labels only; got {examples.split} examples")
        return self.task.labels(self.dataset, examples, self.protocol)

    def progress(self, iterable: Iterable[T], total: int | None = None, desc: str = "") -> Iterable[T]:
        """A progress bar over a long loop (training steps, evaluation batches)."""
        return tqdm(iterable, total=total, desc=desc, disable=not self.show_progress, mininterval=5, leave=False)

    def eval_batch_size(self, example_bytes: float, most: int = 1024) -> int:
        """``budget.eval_batch_size``, or where it is None as many examples of ``example_bytes`` each
        as fit in memory on this trial's device, at most ``most`` (``bench.memory``)."""
        if self.budget.eval_batch_size is not None:
            return self.budget.eval_batch_size
        return batch_size_for(example_bytes, self.device, most)

    def eval_batches(self, n: int, size: int, desc: str = "predict") -> Iterator[np.ndarray]:
        """Index arrays over ``n`` examples in order, ``size`` at a time (``eval_batch_size``), with a
        progress bar. Where the harness keeps ``batch_seconds``, the wall-clock a method spends on each
        batch (from handing it out to asking for the next) is appended there with the batch's size."""
        for lo in self.progress(range(0, n, size), total=-(-n // size), desc=desc):
            index = np.arange(lo, min(lo + size, n))
            tick = time.perf_counter()
            yield index
            if self.batch_seconds is not None:
                self.batch_seconds.append((len(index), time.perf_counter() - tick))

    def torch_generator(self) -> Any:
        import torch

        return torch.Generator().manual_seed(self.seed)
