"""Figures as PNG (matplotlib, headless): the paper's figure 3 (recall@k against history length,
TextPrompt vs USER-LLM, unfrozen vs frozen LLM), its table 3 as a figure (tokens and measured seconds
per example against N), a cost/quality plot the paper does not have (each task's primary metric against LLM
training FLOPs per example, every method of the results) and the compute-quality frontier (the primary
metric against the total training FLOPs each trial spent, pretraining included).

No point stands alone: each carries its 95% CI (over several seeds, one that adds their spread) and its test count, and a point
scored on a capped sample of the test set is drawn hollow. Validation curves scored on fewer than
``FEW_VALID`` examples are dashed and say so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.errors import ConfigError  # noqa: E402
from bench.intervals import over_seeds  # noqa: E402
from bench.named import Registry  # noqa: E402
from bench.report.paper_tables import one_configuration, paper_numbers, pick, table3_pair, userllm  # noqa: E402
from bench.store import records_frame  # noqa: E402

FIGURE3_LINES = {"Unfrozen LLM": {"TP (full)": {"method": "text_prompt", "param.strategy": "full"},
                                  "USER-LLM (Full)": userllm("full")},
                 "Frozen LLM": {"TP (LoRA)": {"method": "text_prompt", "param.strategy": "lora"},
                                "USER-LLM (Enc)": userllm("enc")}}
KS = (1, 5, 10)
FEW_VALID = 100  # validation checks on fewer examples than this are drawn as noisy


def _marker(capped: bool) -> dict:
    """A filled marker for a point tested on the whole test set, a hollow one for a capped sample."""
    return {"markerfacecolor": "none"} if capped else {}


def _line(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    """Rows of one line of figure 3 (a TextPrompt point writes all N events into its prompt)."""
    rows = pick(frame, task="next_item", **where)
    if where["method"] == "text_prompt" and not rows.empty:
        rows = rows[rows["param.prompt_events"] == rows["seq_len"]]
    return rows


def figure3(frame: pd.DataFrame) -> plt.Figure:
    """Recall@1/5/10 against N: TextPrompt and USER-LLM lines, unfrozen (top) and frozen (bottom) LLM."""
    fig, axes = plt.subplots(2, len(KS), figsize=(4 * len(KS), 6.5), squeeze=False)
    drawn = 0
    for row, (panel, lines) in enumerate(FIGURE3_LINES.items()):
        for col, k in enumerate(KS):
            ax, metric = axes[row][col], f"test/recall@{k}"
            for name, where in lines.items():
                rows = _line(frame, where)
                if rows.empty or metric not in rows:
                    continue
                chosen = [one_configuration(group)[0] for _, group in rows.groupby("seq_len")]
                points = sorted(_point(group, metric) for group in chosen)
                n, mean, low, high = (list(v) for v in zip(*points))
                line = ax.errorbar(n, mean, yerr=[low, high], capsize=3, label=name)
                for group, (x, y, _, _) in zip(sorted(chosen, key=lambda g: int(g["seq_len"].iloc[0])), points):
                    ax.plot([x], [y], "o", color=line[0].get_color(), **_marker(bool(group["capped"].any())))
                    ax.annotate(f"n={_count(group)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
                drawn += 1
            ax.set_title(f"{panel}: recall@{k}")
            ax.set_xlabel("history length N")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
            else:
                ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes, color="grey")
    if not drawn:
        raise ConfigError("figure 3 needs next_item results of text_prompt and/or userllm (suite seq_length)")
    datasets = ", ".join(sorted(frame["dataset"].unique()))
    fig.suptitle(f"Figure 3: next item recall vs history length ({datasets}; one configuration per point)\nbars: "
                 "95% CI (several seeds: with their spread); n: test examples; hollow: a capped sample")
    return fig


def _count(rows: pd.DataFrame) -> str:
    """The test examples behind a point (several where seeds differ)."""
    return "/".join(str(int(n)) for n in dict.fromkeys(rows["test_n"].dropna())) or "?"


def _errors(rows: pd.DataFrame, metric: str) -> tuple[float, float, float]:
    """(mean, lower error, upper error) of one configuration: its interval, over several seeds the one that
    carries their spread (``bench.intervals.over_seeds``)."""
    mean, low, high = over_seeds(rows[metric], rows[f"{metric}/ci_low"], rows[f"{metric}/ci_high"])
    return mean, mean - low, high - mean


def _point(rows: pd.DataFrame, metric: str) -> tuple[int, float, float, float]:
    """(N, mean, lower error, upper error) of one configuration."""
    return (int(rows["seq_len"].iloc[0]), *_errors(rows, metric))


def _reference_band(ax: plt.Axes, text: str, rows: pd.DataFrame, metric: str) -> None:
    """A method off the x axis as a horizontal line at its mean and a band over its 95% CI (dotted when
    its test sample was capped)."""
    mean, low, high = _errors(rows, metric)
    ax.axhline(mean, linestyle="--" if not rows["capped"].any() else ":", linewidth=1, color="grey")
    ax.axhspan(mean - low, mean + high, color="grey", alpha=0.08)
    ax.annotate(text, (0.01, mean), xycoords=("axes fraction", "data"), fontsize=8, va="bottom")


def cost_quality(frame: pd.DataFrame) -> plt.Figure:
    """Each task's primary test metric against LLM training FLOPs per example (6ND), one panel per dataset
    and task that has an LLM result; methods without an LLM as reference lines."""
    ok, flops = pick(frame), "acct.flops_per_train_example_6nd"
    with_flops = ok[ok[flops].notna()] if flops in ok else ok.iloc[0:0]
    panels = sorted(set(zip(with_flops["dataset"], with_flops["task"])))  # one dataset per panel: never mixed
    if not panels:
        raise ConfigError("the cost/quality plot needs results of a method with an LLM (LLM FLOPs per example)")
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (dataset, task) in zip(axes[0], panels):
        primary = with_flops[(with_flops["dataset"] == dataset) & (with_flops["task"] == task)]["primary_metric"].iloc[0]
        metric = f"test/{primary}"
        rows = ok[(ok["dataset"] == dataset) & (ok["task"] == task)]
        rows = rows[rows[metric].notna()] if metric in rows else rows.iloc[0:0]
        with_llm = rows[rows[flops].notna()]
        for label, group in with_llm.groupby("label"):
            configurations = [seeds for _, seeds in group.groupby(flops)]  # seeds of one configuration pooled
            x = [float(seeds[flops].iloc[0]) for seeds in configurations]
            mean, low, high = (list(v) for v in zip(*(_errors(seeds, metric) for seeds in configurations)))
            line = ax.errorbar(x, mean, yerr=[low, high], fmt="none", capsize=3, label=label)
            for seeds, xi, yi in zip(configurations, x, mean):
                ax.plot([xi], [yi], "o", color=line[2][0].get_color()[0], **_marker(bool(seeds["capped"].any())))
                ax.annotate(f"n={_count(seeds)}", (xi, yi), textcoords="offset points", xytext=(5, 3), fontsize=7)
        for label, group in rows.drop(with_llm.index).groupby("label"):
            _reference_band(ax, f"{label} (no LLM; n={_count(group)})", group, metric)
        if not with_llm.empty:
            ax.set_xscale("log")
            ax.legend(fontsize=8)
        ax.set_xlabel("LLM training FLOPs per example (6ND)")
        ax.set_ylabel(f"test {primary}")
        ax.set_title(f"{dataset}: {task}")
        ax.grid(alpha=0.3)
    fig.suptitle("Cost vs quality: each task's primary metric against LLM FLOPs per training example\n(bars and "
                 "bands: 95% CI; n: test examples; hollow or dotted: a capped sample)", fontsize=10)
    return fig


def frontier(frame: pd.DataFrame) -> plt.Figure:
    """Each task's primary test metric against the total training FLOPs each trial spent (fine-tuning and
    pretraining, measured), one line per method through its budgets with 95% CIs, one panel per dataset
    and task; methods that train nothing as reference bands."""
    ok, flops = pick(frame), "acct.total_train_flops"
    trained = ok[ok[flops].fillna(0) > 0] if flops in ok else ok.iloc[0:0]
    panels = sorted(set(zip(trained["dataset"], trained["task"])))
    if not panels:
        raise ConfigError("the frontier needs trained results with their total training FLOPs (suite compute_matched)")
    colours = {label: f"C{i}" for i, label in enumerate(sorted(set(trained["label"])))}  # one per method, every panel
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (dataset, task) in zip(axes[0], panels):
        rows = ok[(ok["dataset"] == dataset) & (ok["task"] == task)]
        primary = rows["primary_metric"].iloc[0]
        metric = f"test/{primary}"
        rows = rows[rows[metric].notna()] if metric in rows else rows.iloc[0:0]
        learned = rows[rows[flops].fillna(0) > 0]
        for label, group in learned.groupby("label"):
            budgets = [seeds for _, seeds in group.groupby("budget.flops", dropna=False)]  # seeds of one budget pooled
            budgets.sort(key=lambda seeds: float(seeds[flops].mean()))
            x = [float(seeds[flops].mean()) for seeds in budgets]
            mean, low, high = (list(v) for v in zip(*(_errors(seeds, metric) for seeds in budgets)))
            ax.errorbar(x, mean, yerr=[low, high], capsize=3, label=label, color=colours[label])
            for seeds, xi, yi in zip(budgets, x, mean):
                ax.plot([xi], [yi], "o", color=colours[label], **_marker(bool(seeds["capped"].any())))
        for label, group in rows.drop(learned.index).groupby("label"):
            _reference_band(ax, f"{label} (trains nothing; n={_count(group)})", group, metric)
        ax.set_xscale("log")
        ax.set_xlabel("total training FLOPs (fine-tuning + pretraining, measured)")
        ax.set_ylabel(f"test {primary}")
        ax.set_title(f"{dataset}: {task} (n={'/'.join(sorted({_count(g) for _, g in rows.groupby('label')}))})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("Compute-quality frontier: test metric against the training compute each trial spent\n(bars and "
                 "bands: 95% CI; hollow or dotted: a capped test sample)", fontsize=10)
    return fig


def curves(records: list[dict]) -> plt.Figure:
    """Validation curves of every trained trial: the task's validation metric against training step and
    against training seconds (validation checks not counted), one row of panels per task."""
    trained = [r for r in records if r["status"] == "ok" and r.get("training", {}).get("curve")]
    if not trained:
        raise ConfigError("no trial with a validation curve in these results (records written before curves "
                          "were kept need a re-run)")
    tasks = sorted({r["spec"]["task"] for r in trained})
    fig, axes = plt.subplots(len(tasks), 2, figsize=(12, 4.2 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for record in (r for r in trained if r["spec"]["task"] == task):
            training = record["training"]
            points, metric = training["curve"], training["valid_metric"]
            valid_n = (record.get("examples") or {}).get("valid", [None])[0]
            few = valid_n is not None and valid_n < FEW_VALID
            counted = "" if valid_n is None else f"; valid n={valid_n}" + (", noisy" if few else "")
            name = f"{record['spec']['label']} (seed {record['spec']['seed']}; stopped: {training['stopped']}{counted})"
            values = [point["valid"][metric] for point in points]
            for ax, x in zip(axes[row], ("step", "seconds")):
                ax.plot([point[x] for point in points], values, marker=".", linestyle="--" if few else "-",
                        label=name)
        for ax, x in zip(axes[row], ("training step", "training seconds")):
            ax.set_xlabel(x)
            ax.set_ylabel(f"validation {metric}")
            ax.set_title(task)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"Validation curves (harness-scored checks while training; dashed: fewer than {FEW_VALID} "
                 "validation examples, noisy)")
    return fig


def efficiency(frame: pd.DataFrame) -> plt.Figure:
    """Table 3 as a figure: LLM input tokens and seconds per test example against N (log scale), TextPrompt
    and USER-LLM of the pair table 3 reports, the paper's token counts beside ours."""
    fig, (tokens_ax, seconds_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    paper, drawn, device = paper_numbers(3), 0, None
    for name, side, style in (("TP", 1, "o-"), ("USER-LLM", 2, "s-")):
        points = []
        for n in (50, 100, 200):
            pair = table3_pair(frame, n)
            if pair is None:
                continue
            rows = pair[side]
            chosen, _ = one_configuration(rows)
            timed = rows[rows["test_seconds"].apply(lambda v: isinstance(v, list))]
            seconds = np.asarray(timed["test_seconds"].iloc[0]) if not timed.empty else None
            device = device or (timed["device_name"].iloc[0] if not timed.empty else None)
            points.append((n, float(chosen["acct.llm_input_tokens_mean"].mean()), seconds, pair[0]))
        if points:
            drawn += 1
            ns = [p[0] for p in points]
            line = tokens_ax.plot(ns, [p[1] for p in points], style, label=f"{name} ({points[0][3]}), ours")[0]
            tokens_ax.plot([50, 100, 200], [paper[(f"# Tokens {name}", f"Len{n}")] for n in (50, 100, 200)],
                           marker=style[0], color=line.get_color(), alpha=0.45, linestyle=":", label=f"{name}, paper")
            timed = [(n, s) for n, _, s, _ in points if s is not None]
            if timed:
                means = [s.mean() for _, s in timed]
                spread = [[m - np.percentile(s, 2.5) for (_, s), m in zip(timed, means)],
                          [np.percentile(s, 97.5) - m for (_, s), m in zip(timed, means)]]
                seconds_ax.errorbar([n for n, _ in timed], means, yerr=spread, fmt=style, capsize=3,
                                    color=line.get_color(), label=f"{name} (n={len(timed[0][1])} users)")
    if not drawn:
        raise ConfigError("the efficiency figure needs next_item results of text_prompt and userllm at N = 50, 100 "
                          "or 200 (suite table3)")
    for ax, label in ((tokens_ax, "LLM input tokens per test example"),
                      (seconds_ax, "seconds per test example (prefill + decoding)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([50, 100, 200], ["50", "100", "200"])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("history length N")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"Table 3 as a figure: cost per example vs history length\nmeasured on {device or 'no timed run'}; "
                 "bars: 2.5-97.5 percentiles over the users")
    return fig


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _of_frame(draw: Callable[[pd.DataFrame], plt.Figure]) -> Callable[[list[dict]], plt.Figure]:
    return lambda records: draw(records_frame(records))


# name -> a figure of the records: 3 (recall vs history length), 0 (cost/quality), efficiency (table 3: tokens
# and seconds per example vs N), frontier (metric vs total training FLOPs), curves (validation curves)
FIGURES: Registry[Callable[[list[dict]], plt.Figure]] = Registry("figure", [
    ("3", _of_frame(figure3)), ("0", _of_frame(cost_quality)), ("efficiency", _of_frame(efficiency)),
    ("frontier", _of_frame(frontier)), ("curves", curves)])


def draw_figure(name: str, records: list[dict], path: Path) -> Path:
    """Draw figure ``name`` (a key of FIGURES) from the results into ``path``."""
    draw = FIGURES.lookup(name, "--figure")
    if not records:
        raise ConfigError("no results to draw")
    return _save(draw(records), path)
