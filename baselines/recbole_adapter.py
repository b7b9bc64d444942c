"""Any RecBole sequential recommender (method ``recbole``, ``model:`` SASRec, GRU4Rec, BERT4Rec, ...;
``bert4rec`` is its BERT4Rec preset), with RecBole's own model and trainer, on exactly the harness's split.

- Data: the adapter writes RecBole atomic files (every user's events, with the position in the user's
  time order as timestamp, so RecBole's leave-one-out split is the harness's: last event test, the one
  before it validation) plus the ``.item`` file, so the vocabulary is the whole catalog; RecBole's
  internal item ids are mapped back to ours.
- Training examples: RecBole's prefix augmentation also makes examples of fewer than N events (and from
  users the harness gives no training window); the adapter keeps only its rows of exactly N input
  events, which are the harness's training windows one for one (checked).
- Validation: RecBole's trainer runs its epochs and early stopping, but every validation score it sees is
  the harness's (``ctx.validation``: the method's own predict on the harness's validation examples);
  ``budget.patience`` checks without improvement stop it, ``budget.seconds`` caps its training epochs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from baselines.recbole_compat import sequential_models  # (must precede recbole)
from bench.accounting import count_parameters
from bench.context import TrialContext
from bench.data.views import hidden_item
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.memory import score_bytes
from bench.registry import Method, register_method

DATASET_NAME = "bench"
SEQUENTIAL = "recbole.model.sequential_recommender"
TIE = 1e-9


@contextlib.contextmanager
def bare_argv():
    """RecBole's Config parses ``--key=value`` from sys.argv; give it none."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def write_atomic_files(ctx: TrialContext, folder: Path) -> None:
    """``<folder>/bench/bench.inter`` (user, item, order) of the fit view and ``bench.item``. RecBole's
    leave-two-out split then leaves exactly the harness's training windows: its validation and test rows
    are the view's hidden label events, which nothing reads (the harness validates)."""
    target = folder / DATASET_NAME
    target.mkdir(parents=True, exist_ok=True)
    events = ctx.dataset.events
    order = np.arange(len(events)) - ctx.dataset.user_ptr[events["user"].to_numpy()]
    pd.DataFrame({"user_id:token": events["user"].to_numpy(), "item_id:token": events["item"].to_numpy(),
                  "timestamp:float": order}).to_csv(target / f"{DATASET_NAME}.inter", sep="\t", index=False)
    # every catalog item, and the item hidden events hold (the validation and test labels of the view),
    # which RecBole would otherwise filter out with their rows and so shift its leave-two-out split
    pd.DataFrame({"item_id:token": np.arange(hidden_item(ctx.dataset) + 1)}).to_csv(
        target / f"{DATASET_NAME}.item", sep="\t", index=False)


def sequential_model(name: str) -> type:
    """The RecBole sequential recommender class called ``name``."""
    sequential_models()
    module = importlib.import_module(f"{SEQUENTIAL}.{name.lower()}")
    return getattr(module, name)


class OutOfTime(Exception):
    """``budget.seconds`` of training epochs are spent."""


def harness_trainer(ctx: TrialContext, predict: Any, batches_per_epoch: int) -> type:
    """RecBole's Trainer with the harness's validation in place of RecBole's evaluator, and a wall-clock cap."""
    from recbole.trainer import Trainer

    class HarnessTrainer(Trainer):
        train_seconds = 0.0
        epochs_run = 0

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            if ctx.budget.seconds is not None and self.train_seconds >= ctx.budget.seconds:
                raise OutOfTime
            started = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
            self.train_seconds += time.perf_counter() - started
            self.epochs_run += 1
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            self.model.eval()
            with torch.no_grad():
                ctx.validation.check(predict, self.epochs_run * batches_per_epoch, self.train_seconds,
                                     self.epochs_run * len(ctx.train),
                                     float(self.train_loss_dict[self.epochs_run - 1]) / batches_per_epoch)
            latest = ctx.validation.points[-1]["valid"]
            # RecBole's early stopping counts a tie as an improvement; a hair less per epoch makes it
            # count ties as the harness does (the earlier check stays best), far below a metric's resolution
            return latest[ctx.validation.metric] - TIE * self.epochs_run, latest

    return HarnessTrainer


@register_method("recbole")
class RecBoleSequential(Method):
    tasks = ("next_item",)

    @dataclass(frozen=True)
    class Params:
        model: str = "SASRec"  # any RecBole sequential recommender over item ids (SASRec, GRU4Rec, BERT4Rec, ...)
        layers: int = 2
        dim: int = 64
        heads: int = 2
        dropout: float = 0.2
        mask_ratio: float = 0.2  # BERT4Rec
        loss: str = "CE"
        epochs: int = 20  # the upper bound; validation stops it earlier (budget.patience, budget.seconds)

        def __post_init__(self) -> None:
            if importlib.util.find_spec(f"{SEQUENTIAL}.{self.model.lower()}") is None:
                raise ValueError(f"model {self.model!r} is not a RecBole sequential recommender "
                                 "(e.g. SASRec, GRU4Rec, BERT4Rec)")
            if self.layers < 1 or self.heads < 1 or self.dim % self.heads:
                raise ValueError("recbole needs layers >= 1, heads >= 1 and dim divisible by heads")
            if not 0 < self.mask_ratio < 1:
                raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
            if not 0 <= self.dropout < 1:
                raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
            if self.loss not in ("CE", "BPR"):
                raise ValueError(f"loss must be 'CE' or 'BPR', got {self.loss!r}")
            if self.epochs < 1:
                raise ValueError("epochs must be >= 1")

    def recbole_config(self, ctx: TrialContext) -> dict[str, Any]:
        p, budget = self.params, ctx.budget
        eval_users = ctx.eval_batch_size(score_bytes(ctx.dataset.n_items))  # RecBole's full sort counts scores
        patience = budget.patience if budget.patience is not None else p.epochs
        return {
            "model": p.model, "dataset": DATASET_NAME, "data_path": str(ctx.workdir / "recbole"),
            "checkpoint_dir": str(ctx.workdir / "recbole" / "checkpoints"),
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
            "MAX_ITEM_LIST_LENGTH": ctx.seq_len,
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
            "metrics": ["Recall"], "topk": [10], "valid_metric": "Recall@10",
            "train_neg_sample_args": None if p.loss == "CE" else {"distribution": "uniform", "sample_num": 1},
            "loss_type": p.loss,
            "n_layers": p.layers, "num_layers": p.layers, "n_heads": p.heads, "hidden_size": p.dim,
            "embedding_size": p.dim, "inner_size": 4 * p.dim, "hidden_dropout_prob": p.dropout,
            "attn_dropout_prob": p.dropout, "dropout_prob": p.dropout, "mask_ratio": p.mask_ratio,
            "epochs": p.epochs, "stopping_step": max(0, patience - 1), "eval_step": 1,
            "train_batch_size": budget.batch_size, "eval_batch_size": eval_users * (ctx.dataset.n_items + 1),
            "learning_rate": budget.lr, "weight_decay": budget.weight_decay,
            "seed": ctx.seed, "reproducibility": True, "use_gpu": ctx.device == "cuda", "show_progress": False,
            "worker": 0, "save_dataset": False, "save_dataloaders": False,
        }

    def fit(self, ctx: TrialContext) -> None:
        from recbole.config import Config
        from recbole.data import create_dataset
        from recbole.data.utils import create_samplers, get_dataloader
        from recbole.utils import init_seed

        model_class = sequential_model(self.params.model)
        write_atomic_files(ctx, ctx.workdir / "recbole")
        with bare_argv(), contextlib.chdir(ctx.workdir):
            self.config = Config(model=model_class, config_dict=self.recbole_config(ctx))
            init_seed(self.config["seed"], self.config["reproducibility"])
            dataset = create_dataset(self.config)
            built = dataset.build()
            train, valid, test = built
            windows = torch.nonzero(train.inter_feat["item_length"] == ctx.seq_len).squeeze(1)
            train.inter_feat = train.inter_feat[windows]
            if len(train.inter_feat) != len(ctx.train):
                raise RuntimeError(f"RecBole kept {len(train.inter_feat)} training rows of {ctx.seq_len} events; "
                                   f"the harness has {len(ctx.train)} training windows")
            samplers = create_samplers(self.config, dataset, built)
            self.train_data = get_dataloader(self.config, "train")(self.config, train, samplers[0], shuffle=True)
            self.valid_data = get_dataloader(self.config, "valid")(self.config, valid, samplers[1], shuffle=False)
            self.test_data = get_dataloader(self.config, "test")(self.config, test, samplers[2], shuffle=False)
            token_ids = dataset.field2token_id["item_id"]
            self.internal_ids = torch.tensor([token_ids[str(i)] for i in range(ctx.dataset.n_items)])
            self.model = model_class(self.config, self.train_data.dataset).to(self.config["device"])
            trainer_class = harness_trainer(ctx, lambda examples: self.predict(ctx, examples), len(self.train_data))
            self.trainer = trainer_class(self.config, self.model)
            self.stopped = "epochs"
            try:
                self.trainer.fit(self.train_data, self.valid_data, saved=True, show_progress=False, verbose=False)
                if self.trainer.epochs_run < self.params.epochs:
                    self.stopped = "patience"
            except OutOfTime:
                self.stopped = "seconds"
            checkpoint = torch.load(self.trainer.saved_model_file, map_location=self.config["device"], weights_only=False)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.eval()
        ctx.validation.stop(self.stopped)

    @torch.no_grad()
    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        from recbole.data.interaction import Interaction

        device = self.config["device"]
        scores = []
        for index in ctx.eval_batches(len(examples), ctx.eval_batch_size(score_bytes(ctx.dataset.n_items)), desc="rank"):
            window = ctx.dataset.item[examples.positions(index)]
            batch = Interaction({"item_id_list": self.internal_ids[torch.from_numpy(window.astype(np.int64))],
                                 "item_length": torch.full((len(window),), window.shape[1], dtype=torch.long)})
            full = self.model.full_sort_predict(batch.to(device))
            scores.append(full[:, self.internal_ids.to(device)].float().cpu())
        return Predictions(scores=torch.cat(scores).numpy())

    def accounting(self, ctx: TrialContext) -> dict:
        total, trainable = count_parameters([self.model])
        return {"params_total": total, "params_trainable": trainable,
                "train_steps": self.trainer.epochs_run * len(self.train_data), "train_epochs": self.trainer.epochs_run,
                "train_seconds": self.trainer.train_seconds, "stopped": self.stopped}


@register_method("bert4rec")
class Bert4Rec(RecBoleSequential):
    """The ``recbole`` method with RecBole's BERT4Rec."""

    @dataclass(frozen=True)
    class Params(RecBoleSequential.Params):
        model: str = "BERT4Rec"
