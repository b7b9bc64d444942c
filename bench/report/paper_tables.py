"""The paper's tables as layouts: its rows and columns, our numbers from the results, and the paper's
own numbers (``paper_numbers.csv``, transcribed cell by cell) beside them. A cell without a result is
"—", never a made-up value. A row names (dataset family, task, metric); a column names the method
configuration (method and parameter values) and optionally a history length."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.registry import DATASETS
from bench.errors import ConfigError
from bench.named import Registry
from bench.report.formats import format_frame
from bench.report.summary import best_of_searches

PAPER = Path(__file__).with_name("paper_numbers.csv")
# the paper's dataset families, each with its datasets: the paper's own first, an embedded stand-in last
FAMILIES = {family: tuple(sorted((s.name for s in DATASETS.values() if s.family == family),
                                 key=lambda name: DATASETS[name].embedded))
            for family in dict.fromkeys(s.family for s in DATASETS.values())}
TASKS = {"NextItem": "next_item", "FavGenre": "fav_category", "FavCat": "fav_category", "ReviewG": "review_gen"}
MISSING = "—"


@dataclass(frozen=True)
class Row:
    family: str
    task: str  # a key of TASKS
    metric: str  # "R@k" or "ROUGE"

    @property
    def label(self) -> str:
        return f"{self.family} {self.task} {self.metric}"

    @property
    def column(self) -> str:
        return "test/rouge_lsum" if self.metric == "ROUGE" else f"test/recall@{self.metric.removeprefix('R@')}"


@dataclass(frozen=True)
class Column:
    label: str
    where: dict = field(default_factory=dict)  # results-frame column -> required value
    seq_len: int = 50


@dataclass(frozen=True)
class Layout:
    title: str
    rows: list
    columns: list
    cell: Callable[[pd.DataFrame, object, object], str] | None = None  # None: metric of row x column

    def row_label(self, row: object) -> str:
        return row.label if isinstance(row, Row) else str(row)

    def column_label(self, column: object) -> str:
        return column.label if isinstance(column, Column) else str(column)


def userllm(strategy: str = "full", pretrained: bool = True, encoder: str = "ar", fusion: str = "cross_attention",
            perceiver: bool = False, short_context: int = 0) -> dict:
    """The results-frame filter of one USER-LLM variant."""
    return {"method": "userllm", "param.strategy": strategy, "param.pretrained": pretrained,
            "param.encoder.kind": encoder, "param.fusion": fusion, "param.perceiver": perceiver,
            "param.short_context": short_context}


def text_prompt(strategy: str = "full", events: int = 50) -> dict:
    return {"method": "text_prompt", "param.strategy": strategy, "param.prompt_events": events}


DUAL_ENCODER = {"method": "dual_encoder"}


def paper_numbers(table: int) -> dict[tuple[str, str], float]:
    frame = pd.read_csv(PAPER)
    frame = frame[frame["table"] == table]
    return {(r.row, r.column): r.value for r in frame.itertuples()}


def pick(frame: pd.DataFrame, **conditions) -> pd.DataFrame:
    """Finished trials (best of each search) whose columns hold the given values."""
    ok = best_of_searches(frame[frame["status"] == "ok"]) if len(frame) else frame
    for column, allowed in conditions.items():
        if column not in ok:
            return ok.iloc[0:0]
        ok = ok[ok[column].isin(allowed if isinstance(allowed, (list, tuple)) else [allowed])]
    return ok


CONFIGURATION_KEYS = ("suite", "dataset", "dataset_options", "dtype")
CONFIGURATION_PREFIXES = ("param.", "budget.", "protocol.")
DATASET_PREFERENCE = [name for names in FAMILIES.values() for name in names]  # the paper's dataset first


def configurations(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """``rows`` split into configurations (suite, dataset, dtype, every parameter, budget and protocol
    value; only seeds differ within one), the preferred first: the paper's dataset over a stand-in, then
    uncapped and larger test sets, then more training examples."""
    if rows.empty:
        return []
    keys = [c for c in rows.columns if c in CONFIGURATION_KEYS or c.startswith(CONFIGURATION_PREFIXES)]
    keyed = rows.assign(**{c: rows[c].astype(str) for c in keys})
    groups = [rows.loc[group.index] for _, group in keyed.groupby(keys, dropna=False, sort=False)]

    def preference(group: pd.DataFrame) -> tuple:
        dataset = group["dataset"].iloc[0]
        rank = DATASET_PREFERENCE.index(dataset) if dataset in DATASET_PREFERENCE else len(DATASET_PREFERENCE)
        test_n = group["test_n"].max() if "test_n" in group else 0
        seen = group["train.examples_seen"].max() if "train.examples_seen" in group else 0
        return rank, bool(group["capped"].any()) if "capped" in group else False, -(test_n or 0), -(seen or 0)

    return sorted(groups, key=preference)


def one_configuration(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The preferred configuration's rows (its seeds) and what the cell should say about the choice."""
    choices = configurations(rows)
    if not choices:
        return rows, ""
    chosen = choices[0]
    first = chosen.iloc[0]
    note = f"{first['dataset']}, {first['suite']}/{first['label']}"
    if len(chosen) > 1:
        note += f"; mean of {len(chosen)} seeds"
    if len(choices) > 1:
        note += f"; 1 of {len(choices)} configurations"
    return chosen, note


def _value(rows: pd.DataFrame, column: str, fmt: str = "{:.3f}") -> str:
    """One configuration's value (the mean over its seeds), never a mean over unlike runs."""
    if rows.empty or column not in rows or rows[column].isna().all():
        return MISSING
    chosen, note = one_configuration(rows[rows[column].notna()])
    return f"{fmt.format(chosen[column].mean())} ({note})"


def metric_cell(frame: pd.DataFrame, row: Row, column: Column) -> str:
    rows = pick(frame, task=TASKS[row.task], seq_len=column.seq_len, dataset=FAMILIES[row.family], **column.where)
    return _value(rows, row.column, "{:.2f}" if row.metric == "ROUGE" else "{:.3f}")


TABLE3_ROWS = ["# Tokens USER-LLM", "# Tokens TP", "FLOPs Reduction", "FLOPs Reduction, measured training",
               "FLOPs Reduction, measured inference", "Inference speed-up, measured", "Peak memory GB, TP / USER-LLM"]
TABLE3_RATIOS = {"FLOPs Reduction": "acct.flops_per_train_example_6nd",
                 "FLOPs Reduction, measured training": "acct.flops_per_train_example_measured",
                 "FLOPs Reduction, measured inference": "acct.flops_per_inference_example_measured"}


def table3_pair(frame: pd.DataFrame, n: int) -> tuple[str, pd.DataFrame, pd.DataFrame] | None:
    """(strategy, TextPrompt rows, USER-LLM rows) at history length ``n``, of the same strategy (full if
    both have it, else LoRA); None where there is no such pair."""
    for strategy in ("full", "lora"):
        tp = pick(frame, method="text_prompt", task="next_item", seq_len=n,
                  **{"param.prompt_events": n, "param.strategy": strategy})
        ours = pick(frame, method="userllm", task="next_item", seq_len=n,
                    **{"param.fusion": "cross_attention", "param.short_context": 0, "param.strategy": strategy})
        if not tp.empty and not ours.empty:
            return strategy, tp, ours
    return None


def inference_speedup(tp: pd.DataFrame, ours: pd.DataFrame, resamples: int = 2000) -> str:
    """TextPrompt's mean seconds per test example over USER-LLM's, on the same test users timed one by one
    (``budget.eval_batch_size: 1``), with a 95% bootstrap interval over those users and the device."""
    timed = [(a, b) for _, a in tp.iterrows() for _, b in ours.iterrows()
             if isinstance(a.get("test_seconds"), list) and isinstance(b.get("test_seconds"), list)
             and a["test_examples"] == b["test_examples"] and a["seed"] == b["seed"]]
    if not timed:
        return MISSING
    a, b = timed[0]
    slow, fast = np.asarray(a["test_seconds"]), np.asarray(b["test_seconds"])
    draws = np.random.default_rng(0).integers(0, len(slow), (resamples, len(slow)))
    low, high = np.percentile(slow[draws].mean(1) / fast[draws].mean(1), [2.5, 97.5])
    return (f"{slow.mean() / fast.mean():.1f}X [{low:.1f}, {high:.1f}] ({len(slow)} users, "
            f"{slow.mean():.2f} / {fast.mean():.3f} s each; {a['device_name']})")


def _table3(frame: pd.DataFrame, row: str, column: str) -> str:
    """Tokens, 6ND and measured FLOPs reductions, the measured inference speed-up and peak memory, from a
    TextPrompt and a USER-LLM trial of the same strategy (full if both have it, else LoRA), the strategy
    named in the cell."""
    pair = table3_pair(frame, int(column.removeprefix("Len")))
    if pair is None:
        return MISSING
    strategy, tp, ours = pair
    if row == "# Tokens TP":
        return f"{_value(tp, 'acct.llm_input_tokens_mean', '{:.0f}')} [{strategy}]"
    if row == "# Tokens USER-LLM":
        return f"{_value(ours, 'acct.llm_input_tokens_mean', '{:.0f}')} [{strategy}]"
    if row == "Inference speed-up, measured":
        cell = inference_speedup(tp, ours)
        return cell if cell == MISSING else f"{cell} [{strategy}]"
    column_name = TABLE3_RATIOS.get(row, "peak_rss_gb")
    tp, ours = tp[tp[column_name].notna()] if column_name in tp else tp.iloc[0:0], \
        ours[ours[column_name].notna()] if column_name in ours else ours.iloc[0:0]
    if tp.empty or ours.empty:
        return MISSING
    (tp, tp_note), (ours, ours_note) = one_configuration(tp), one_configuration(ours)
    if row in TABLE3_RATIOS:
        return f"{tp[column_name].mean() / ours[column_name].mean():.1f}X [{strategy}; {tp_note} / {ours_note}]"
    return f"{tp[column_name].mean():.2f} / {ours[column_name].mean():.2f} [{strategy}]"


def _rows(spec: list[tuple[str, str, list[str]]]) -> list[Row]:
    return [Row(family, task, metric) for family, task, metrics in spec for metric in metrics]


RECALLS = ["R@1", "R@5", "R@10"]
ALL_TASKS = _rows([("MovieLens20M", "NextItem", ["R@1"]), ("MovieLens20M", "FavGenre", ["R@1"]),
                   ("Google Review", "NextItem", ["R@1"]), ("Google Review", "FavCat", ["R@1"]),
                   ("Google Review", "ReviewG", ["ROUGE"]), ("Amazon Review", "NextItem", ["R@1"]),
                   ("Amazon Review", "FavCat", ["R@1"]), ("Amazon Review", "ReviewG", ["ROUGE"])])
NEXT_ITEM_RECALLS = _rows([(family, "NextItem", RECALLS) for family in FAMILIES])
STRATEGIES = ("full", "lora", "enc", "proj")
TABLE13_ROWS = (NEXT_ITEM_RECALLS + _rows([("MovieLens20M", "FavGenre", RECALLS), ("Google Review", "FavCat", RECALLS),
                                           ("Amazon Review", "FavCat", RECALLS), ("Google Review", "ReviewG", ["ROUGE"]),
                                           ("Amazon Review", "ReviewG", ["ROUGE"])]))

LAYOUTS: Registry[Layout] = Registry("paper table", {
    2: Layout("Table 2: next item prediction, USER-LLM vs DualEnc and Bert4Rec (recall@k)", NEXT_ITEM_RECALLS,
              [Column("DualEnc", DUAL_ENCODER), Column("Bert4Rec", {"method": "bert4rec"}),
               Column("USER-LLM", userllm("full"))]),
    3: Layout("Table 3: LLM input tokens and FLOPs reduction, TP vs USER-LLM (6ND per training example), with "
              "measured FLOPs, the measured inference speed-up and peak memory", TABLE3_ROWS,
              ["Len50", "Len100", "Len200"], _table3),
    4: Layout("Table 4: favourite genre/category (recall@1) and review generation (ROUGE-Lsum)",
              _rows([("MovieLens20M", "FavGenre", ["R@1"]), ("Google Review", "FavCat", ["R@1"]),
                     ("Google Review", "ReviewG", ["ROUGE"]), ("Amazon Review", "FavCat", ["R@1"]),
                     ("Amazon Review", "ReviewG", ["ROUGE"])]),
              [Column("DualEnc", DUAL_ENCODER), Column("TP", text_prompt("full")), Column("USER-LLM", userllm("full"))]),
    5: Layout("Table 5: training strategies (recall@1, ROUGE-Lsum)", ALL_TASKS,
              [Column(s.capitalize() if s != "lora" else "LoRA", userllm(s)) for s in STRATEGIES]),
    6: Layout("Table 6: Perceiver (16 latents) vs one embedding per event (recall@1)",
              _rows([("MovieLens20M", "NextItem", ["R@1"]), ("MovieLens20M", "FavGenre", ["R@1"])]),
              [Column("Full", userllm("full")), Column("Enc", userllm("enc")),
               Column("Perceiver Full", userllm("full", perceiver=True)),
               Column("Perceiver Enc", userllm("enc", perceiver=True))]),
    7: Layout("Table 7: short-term text prompt + long-term embedding (next item recall@k)", NEXT_ITEM_RECALLS,
              [Column("TP10", text_prompt("full", 10)), Column("TP50", text_prompt("full", 50)),
               Column("AR50", userllm("full")), Column("AR50TP10", userllm("full", short_context=10))]),
    8: Layout("Table 8: fusion, encoder and pretraining (full fine-tune; recall@1, ROUGE-Lsum)", ALL_TASKS,
              [Column("Xatten PT", userllm("full")), Column("Xatten RD", userllm("full", pretrained=False)),
               Column("soft prompt", userllm("full", fusion="soft_prompt")),
               Column("DualEnc-Xatten", userllm("full", encoder="de"))]),
    10: Layout("Table 10: USER-LLM vs TextPrompt, full fine-tune (next item recall@k)",
               _rows([(family, "NextItem", RECALLS) for family in ("Google Review", "Amazon Review")]),
               [Column("TP", text_prompt("full")), Column("USER-LLM", userllm("full"))]),
    11: Layout("Table 11: history length, unfrozen (TP full, USER-LLM Full) vs frozen LLM (TP LoRA, USER-LLM Enc)",
               _rows([("MovieLens20M", "NextItem", RECALLS)]),
               [Column(f"{state} Len{n} {name}", where, n)
                for state, (tp, ours) in (("Unfrozen", ("full", "full")), ("Frozen", ("lora", "enc")))
                for n in (50, 100, 200)
                for name, where in (("TP", text_prompt(tp, n)), ("USER-LLM", userllm(ours)))]),
    12: Layout("Table 12: AR vs DE encoder, with and without 10 events as text (next item recall@k)",
               NEXT_ITEM_RECALLS,
               [Column("AR50", userllm("full")), Column("AR50TP10", userllm("full", short_context=10)),
                Column("DE50", userllm("full", encoder="de")),
                Column("DE50TP10", userllm("full", encoder="de", short_context=10))]),
    13: Layout("Table 13: training strategies x pretrained (PT) / random (RD) encoder; DualEnc-Xatten Full + PT",
               TABLE13_ROWS,
               [Column(f"{s.capitalize() if s != 'lora' else 'LoRA'} {'PT' if pt else 'RD'}", userllm(s, pretrained=pt))
                for s in STRATEGIES for pt in (True, False)] + [Column("DualEnc-Xatten", userllm("full", encoder="de"))]),
    14: Layout("Table 14: cross-attention vs soft prompt by training strategy (pretrained AR encoder)", ALL_TASKS,
               [Column(f"{name} {s.capitalize() if s != 'lora' else 'LoRA'}", userllm(s, fusion=fusion))
                for name, fusion in (("Xatten", "cross_attention"), ("soft", "soft_prompt")) for s in STRATEGIES]),
})


def paper_table(number: int, frame: pd.DataFrame, fmt: str = "terminal") -> str:
    """The paper's table ``number`` with our numbers ("ours": dataset in brackets, and the number of trials
    averaged where several match a cell) and the paper's."""
    title, body = paper_table_frame(number, frame)
    table = format_frame(body, fmt)
    return table if fmt == "csv" else f"{title}\n\n{table}"


def paper_table_frame(number: int, frame: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The title and cells of the paper's table ``number`` (see ``paper_table``)."""
    if number in (1, 9):
        raise ConfigError(f"--table {number}: table 1 is dataset statistics (`bench data describe`), table 9 "
                          "hyper-parameters (bench/paper_budgets.py); no results fill them; expected one of "
                          f"{', '.join(LAYOUTS.names())}")
    layout, paper = LAYOUTS.lookup(number, "--table"), paper_numbers(number)
    cell = layout.cell or metric_cell
    body = []
    for row in layout.rows:
        label = layout.row_label(row)
        cells = {"": label}
        for column in layout.columns:
            name = layout.column_label(column)
            cells[f"{name} ours"] = cell(frame, row, column)
            value = paper.get((label, name))
            cells[f"{name} paper"] = MISSING if value is None else f"{value:g}"
        body.append(cells)
    return layout.title, pd.DataFrame(body)
