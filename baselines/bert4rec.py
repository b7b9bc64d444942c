"""Bert4Rec baseline: RecBole's BERT4Rec model and trainer, trained on exactly the harness's split and
evaluated by the harness on its own test examples by full ranking over the catalog.

The adapter writes RecBole atomic files (every user's events, with the position in the user's
time order as timestamp so RecBole's leave-one-out split is ours: last event test, the one before it
validation, the rest training) plus the ``.item`` file so the vocabulary is the whole catalog, then maps
RecBole's internal item ids back to ours.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import baselines.recbole_compat  # noqa: F401  (must precede recbole)
import numpy as np
import pandas as pd
import torch

from bench.accounting import count_parameters
from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.registry import Method, register_method

DATASET_NAME = "bench"


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
    """``<folder>/bench/bench.inter`` (user, item, order) and ``bench.item`` (every catalog item)."""
    target = folder / DATASET_NAME
    target.mkdir(parents=True, exist_ok=True)
    events = ctx.dataset.events
    order = np.arange(len(events)) - ctx.dataset.user_ptr[events["user"].to_numpy()]
    pd.DataFrame({"user_id:token": events["user"].to_numpy(), "item_id:token": events["item"].to_numpy(),
                  "timestamp:float": order}).to_csv(target / f"{DATASET_NAME}.inter", sep="\t", index=False)
    pd.DataFrame({"item_id:token": np.arange(ctx.dataset.n_items)}).to_csv(
        target / f"{DATASET_NAME}.item", sep="\t", index=False)


@register_method("bert4rec")
class Bert4Rec(Method):
    tasks = ("next_item",)

    @dataclass(frozen=True)
    class Params:
        layers: int = 2
        dim: int = 64
        heads: int = 2
        dropout: float = 0.2
        mask_ratio: float = 0.2
        epochs: int = 20
        stopping_step: int = 3  # early stopping on validation recall@10

        def __post_init__(self) -> None:
            if self.layers < 1 or self.heads < 1 or self.dim % self.heads:
                raise ValueError("bert4rec needs layers >= 1, heads >= 1 and dim divisible by heads")
            if not 0 < self.mask_ratio < 1:
                raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
            if self.epochs < 1 or self.stopping_step < 1:
                raise ValueError("epochs and stopping_step must be >= 1")

    def recbole_config(self, ctx: TrialContext) -> dict[str, Any]:
        p, budget = self.params, ctx.budget
        return {
            "model": "BERT4Rec", "dataset": DATASET_NAME, "data_path": str(ctx.workdir / "recbole"),
            "checkpoint_dir": str(ctx.workdir / "recbole" / "checkpoints"),
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
            "MAX_ITEM_LIST_LENGTH": ctx.seq_len,
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
            "metrics": ["Recall"], "topk": [10], "valid_metric": "Recall@10",
            "train_neg_sample_args": None, "loss_type": "CE",
            "n_layers": p.layers, "n_heads": p.heads, "hidden_size": p.dim, "inner_size": 4 * p.dim,
            "hidden_dropout_prob": p.dropout, "attn_dropout_prob": p.dropout, "mask_ratio": p.mask_ratio,
            "epochs": p.epochs, "stopping_step": p.stopping_step, "train_batch_size": budget.batch_size,
            "eval_batch_size": budget.eval_batch_size, "learning_rate": budget.lr,
            "seed": ctx.seed, "reproducibility": True, "use_gpu": ctx.device == "cuda", "show_progress": False,
            "worker": 0, "save_dataset": False, "save_dataloaders": False,
        }

    def fit(self, ctx: TrialContext) -> None:
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.sequential_recommender import BERT4Rec
        from recbole.trainer import Trainer
        from recbole.utils import init_seed

        write_atomic_files(ctx, ctx.workdir / "recbole")
        with bare_argv(), contextlib.chdir(ctx.workdir):
            self.config = Config(model=BERT4Rec, config_dict=self.recbole_config(ctx))
            init_seed(self.config["seed"], self.config["reproducibility"])
            dataset = create_dataset(self.config)
            self.train_data, self.valid_data, self.test_data = data_preparation(self.config, dataset)
            self.model = BERT4Rec(self.config, self.train_data.dataset).to(self.config["device"])
            self.trainer = Trainer(self.config, self.model)
            self.best_valid, _ = self.trainer.fit(self.train_data, self.valid_data, saved=True, show_progress=False)
            checkpoint = torch.load(self.trainer.saved_model_file, map_location=self.config["device"], weights_only=False)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.eval()
        token_ids = dataset.field2token_id["item_id"]
        self.internal_ids = torch.tensor([token_ids[str(i)] for i in range(ctx.dataset.n_items)])
        self.steps = len(self.trainer.train_loss_dict) * len(self.train_data)  # epochs run x batches

    @torch.no_grad()
    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        from recbole.data.interaction import Interaction

        device = self.config["device"]
        scores = []
        for lo in range(0, len(examples), ctx.budget.eval_batch_size):
            window = ctx.dataset.item[examples.positions(slice(lo, lo + ctx.budget.eval_batch_size))]
            batch = Interaction({"item_id_list": self.internal_ids[torch.from_numpy(window.astype(np.int64))],
                                 "item_length": torch.full((len(window),), window.shape[1], dtype=torch.long)})
            full = self.model.full_sort_predict(batch.to(device))
            scores.append(full[:, self.internal_ids.to(device)].float().cpu())
        return Predictions(scores=torch.cat(scores).numpy())

    def accounting(self, ctx: TrialContext) -> dict:
        total, trainable = count_parameters([self.model])
        return {"params_total": total, "params_trainable": trainable, "train_steps": self.steps,
                "best_valid_recall@10_recbole": float(self.best_valid)}
