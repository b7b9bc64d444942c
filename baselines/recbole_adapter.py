"""Any RecBole sequential recommender (method ``recbole``, ``model:`` SASRec, GRU4Rec, BERT4Rec, SASRecF,
...; ``bert4rec`` is its BERT4Rec preset): RecBole's own model and loss, trained by the harness's loop on
exactly the harness's training windows, in the same budget currency as every other method.

- Data: the adapter writes RecBole atomic files (every visible event, and a ``.item`` file of the whole
  catalog with each item's categories), so RecBole's vocabulary is the catalog; RecBole's internal item
  ids are mapped back to ours. Feature-aware models (``SASRecF``, ``GRU4RecF``: a name ending in ``F``)
  read the item categories; every other model reads item ids only.
- Training: ``bench.models.training.train`` over the harness's training windows (``budget.steps`` of
  ``budget.batch_size``, AdamW with warm-up and cosine decay, harness-scored validation checks every
  ``budget.eval_every`` steps, ``budget.patience``, ``budget.flops``): each batch is a RecBole
  ``Interaction`` of the windows' N events and their labels, and the loss is the model's own
  ``calculate_loss``. RecBole's epochs, trainer and evaluator are not used, so a RecBole trial's steps,
  examples and FLOPs mean what they mean for the Dual Encoder.
- Masked models (BERT4Rec: RecBole's ``transform: mask_itemseq``) learn from the window and its label as
  one sequence of N + 1 events (RecBole's own masking); at prediction they read all N input events and a
  mask after them. (RecBole's test reconstruction drops a sequence's first event to make room for the
  mask; the adapter feeds a leading pad instead, so no input event is dropped.)
"""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import sys
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
from bench.models.training import TrainRun, train
from bench.registry import Method, register_method

DATASET_NAME = "bench"
SEQUENTIAL = "recbole.model.sequential_recommender"
CATEGORY = "category"  # the .item file's category field (token_seq)


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
    """``<folder>/bench/bench.inter`` (user, item, order) of the fit view and ``bench.item`` (every catalog
    item and the item hidden events hold, with its categories as tokens)."""
    target = folder / DATASET_NAME
    target.mkdir(parents=True, exist_ok=True)
    events = ctx.dataset.events
    order = np.arange(len(events)) - ctx.dataset.user_ptr[events["user"].to_numpy()]
    pd.DataFrame({"user_id:token": events["user"].to_numpy(), "item_id:token": events["item"].to_numpy(),
                  "timestamp:float": order}).to_csv(target / f"{DATASET_NAME}.inter", sep="\t", index=False)
    ptr, ids = ctx.dataset.item_categories
    tokens = [" ".join(str(c) for c in ids[ptr[i]:ptr[i + 1]]) for i in range(ctx.dataset.n_items)]
    pd.DataFrame({"item_id:token": np.arange(hidden_item(ctx.dataset) + 1),
                  f"{CATEGORY}:token_seq": tokens + [""]}).to_csv(target / f"{DATASET_NAME}.item", sep="\t",
                                                                   index=False)


def sequential_model(name: str) -> type:
    """The RecBole sequential recommender class called ``name``."""
    sequential_models()
    module = importlib.import_module(f"{SEQUENTIAL}.{name.lower()}")
    return getattr(module, name)


def window_items(ctx: TrialContext, positions: np.ndarray) -> torch.Tensor:
    """Our item ids of the events at ``positions`` (int64 [b, n])."""
    return torch.from_numpy(ctx.dataset.item[positions].astype(np.int64))


def masked_model(model: str) -> bool:
    """A masked (Cloze) model, which RecBole trains through its ``mask_itemseq`` transform (BERT4Rec)."""
    defaults = importlib.resources.files("recbole") / "properties" / "model" / f"{model}.yaml"
    return defaults.is_file() and "mask_itemseq" in defaults.read_text()


def reads_categories(model: str) -> bool:
    """RecBole's feature-aware sequential models (SASRecF, GRU4RecF) read item features."""
    return model.endswith("F")


@register_method("recbole")
class RecBoleSequential(Method):
    tasks = ("next_item",)

    @dataclass(frozen=True)
    class Params:
        model: str = "SASRec"  # any RecBole sequential recommender over item ids (SASRec, GRU4Rec, BERT4Rec, SASRecF, ...)
        layers: int = 2
        dim: int = 64
        heads: int = 2
        dropout: float = 0.2
        mask_ratio: float = 0.2  # BERT4Rec
        loss: str = "CE"

        def __post_init__(self) -> None:
            sequential_models()  # finding a model imports the package, whose import turns anomaly detection on
            if importlib.util.find_spec(f"{SEQUENTIAL}.{self.model.lower()}") is None:
                raise ValueError(f"model {self.model!r} is not a RecBole sequential recommender "
                                 "(e.g. SASRec, GRU4Rec, BERT4Rec, SASRecF)")
            if self.layers < 1 or self.heads < 1 or self.dim % self.heads:
                raise ValueError("recbole needs layers >= 1, heads >= 1 and dim divisible by heads")
            if not 0 < self.mask_ratio < 1:
                raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
            if not 0 <= self.dropout < 1:
                raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
            if self.loss not in ("CE", "BPR"):
                raise ValueError(f"loss must be 'CE' or 'BPR', got {self.loss!r}")

    @classmethod
    def inputs(cls, params: Any) -> tuple[str, ...]:
        return ("item ids", "categories") if reads_categories(params.model) else ("item ids",)

    @classmethod
    def targets(cls, params: Any) -> str:
        return "masked positions" if masked_model(params.model) else "last"

    @classmethod
    def window_kinds(cls, params: Any) -> tuple[str, ...]:
        """A model trained on a window and its label reads RecBole's ``item_length``: prefixes too; a masked
        model's sequence is the window and its label, exact windows only."""
        return ("exact",) if masked_model(params.model) else ("exact", "prefixes")

    def recbole_config(self, ctx: TrialContext) -> dict[str, Any]:
        p = self.params
        features = reads_categories(p.model)
        return {
            "model": p.model, "dataset": DATASET_NAME, "data_path": str(ctx.workdir / "recbole"),
            "checkpoint_dir": str(ctx.workdir / "recbole" / "checkpoints"),
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"] + [CATEGORY] * features},
            "selected_features": [CATEGORY] if features else [], "pooling_mode": "mean",
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
            "metrics": ["Recall"], "topk": [10], "valid_metric": "Recall@10",
            "train_neg_sample_args": None if p.loss == "CE" else {"distribution": "uniform", "sample_num": 1},
            "loss_type": p.loss,
            "n_layers": p.layers, "num_layers": p.layers, "n_heads": p.heads, "hidden_size": p.dim,
            "embedding_size": p.dim, "inner_size": 4 * p.dim, "hidden_dropout_prob": p.dropout,
            "attn_dropout_prob": p.dropout, "dropout_prob": p.dropout, "mask_ratio": p.mask_ratio,
            "seed": ctx.seed, "reproducibility": True, "use_gpu": ctx.device == "cuda", "show_progress": False,
            "worker": 0, "save_dataset": False, "save_dataloaders": False,
        }

    def fit(self, ctx: TrialContext) -> None:
        from recbole.config import Config
        from recbole.data import create_dataset
        from recbole.data.transform import construct_transform
        from recbole.utils import init_seed

        model_class = sequential_model(self.params.model)
        write_atomic_files(ctx, ctx.workdir / "recbole")
        self.masked = masked_model(self.params.model)
        # a masked model's sequence holds the window, then its label (training) or a mask (prediction)
        config = self.recbole_config(ctx) | {"MAX_ITEM_LIST_LENGTH": ctx.seq_len + self.masked}
        with bare_argv(), contextlib.chdir(ctx.workdir):
            self.config = Config(model=model_class, config_dict=config)
            init_seed(self.config["seed"], self.config["reproducibility"])
            self.dataset = create_dataset(self.config)
            self.transform = construct_transform(self.config)
        # item features as the tensors a feature-aware model looks up (RecBole converts them in build(),
        # which would also split and augment the interactions, unused here)
        self.dataset.item_feat = self.dataset._dataframe_to_interaction(self.dataset.item_feat)
        token_ids = self.dataset.field2token_id["item_id"]
        self.internal_ids = torch.tensor([token_ids[str(i)] for i in range(ctx.dataset.n_items)])
        self.model = model_class(self.config, self.dataset).to(ctx.device)
        labels = torch.from_numpy(ctx.labels(ctx.train).astype(np.int64))
        generator = ctx.torch_generator()

        def step_loss(index: np.ndarray) -> torch.Tensor:
            return self.model.calculate_loss(self.training_batch(ctx, index, labels, generator).to(ctx.device))

        self.run: TrainRun = train(ctx, self.model, step_loss, len(ctx.train),
                                   predict=lambda examples: self.predict(ctx, examples))

    def training_batch(self, ctx: TrialContext, index: np.ndarray, labels: torch.Tensor,
                       generator: torch.Generator) -> Any:
        """The RecBole ``Interaction`` of training windows ``index``: their N events and labels (a masked
        model: one sequence of N + 1 events, masked by RecBole's transform); BPR: one uniform negative each."""
        from recbole.data.interaction import Interaction

        window = self.internal_ids[window_items(ctx, ctx.train.positions(index))]
        target = self.internal_ids[labels[index]]
        if self.masked:
            sequence = torch.cat([window, target[:, None]], 1)
            batch = Interaction({"item_id_list": sequence, "item_length": torch.full((len(index),), sequence.shape[1])})
            return self.transform(self.dataset, batch)
        padding = torch.from_numpy(ctx.train.padding(index))  # a prefix: RecBole's right padding is item 0
        fields = {"item_id_list": window.masked_fill(padding, 0), "item_length": (~padding).sum(1), "item_id": target}
        if self.params.loss == "BPR":
            negative = torch.randint(1, self.dataset.item_num, (len(index),), generator=generator)
            fields["neg_item_id"] = torch.where(negative == target, negative % (self.dataset.item_num - 1) + 1, negative)
        return Interaction(fields)

    def prediction_batch(self, ctx: TrialContext, examples: Examples, index: np.ndarray) -> Any:
        """The RecBole ``Interaction`` of ``examples[index]``: their N input events (a masked model: after
        a leading pad, which RecBole's test reconstruction drops to make room for the mask)."""
        from recbole.data.interaction import Interaction

        window = self.internal_ids[window_items(ctx, examples.positions(index))]
        if self.masked:
            window = torch.cat([torch.zeros(len(index), 1, dtype=window.dtype), window], 1)
        return Interaction({"item_id_list": window, "item_length": torch.full((len(index),), window.shape[1])})

    @torch.no_grad()
    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        self.model.eval()
        scores = []
        for index in ctx.eval_batches(len(examples), ctx.eval_batch_size(score_bytes(ctx.dataset.n_items)), desc="rank"):
            full = self.model.full_sort_predict(self.prediction_batch(ctx, examples, index).to(ctx.device))
            scores.append(full[:, self.internal_ids.to(full.device)].float().cpu())
        return Predictions(scores=torch.cat(scores).numpy())

    def accounting(self, ctx: TrialContext) -> dict:
        total, trainable = count_parameters([self.model])
        return {"params_total": total, "params_trainable": trainable, **self.run.accounting()}


@register_method("bert4rec")
class Bert4Rec(RecBoleSequential):
    """The ``recbole`` method with RecBole's BERT4Rec."""

    @dataclass(frozen=True)
    class Params(RecBoleSequential.Params):
        model: str = "BERT4Rec"
