"""The `bench` command: data, run, report, list, profile."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tabulate import tabulate

from bench.errors import BenchError
from bench.memory import pin_mmap_threshold
from bench.tracking import Logger, parse_log


class _Names:
    """The names of a registry as argparse ``choices``, imported only when argparse needs them (a check or
    the help), so ``bench`` starts without loading what the registry's module loads."""

    def __init__(self, module: str, registry: str) -> None:
        self.module, self.registry = module, registry

    def _names(self) -> list[str]:
        import importlib

        return getattr(importlib.import_module(self.module), self.registry).names()

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _key_values(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BenchError(f"--option {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def cmd_data_list(args: argparse.Namespace) -> int:
    from bench.data import DATASETS

    rows = [(spec.name, "embedded" if spec.embedded else "--path", ", ".join(spec.options) or "-", spec.description)
            for spec in DATASETS.values()]
    print(tabulate(rows, headers=["dataset", "source", "options", "description"]))
    return 0


def _tied_share(dataset, examples) -> str:
    """How many labels share their timestamp with the event before them: their order is the source's."""
    timestamps = dataset.events["timestamp"].to_numpy()
    tied = int((timestamps[examples.label_positions] == timestamps[examples.label_positions - 1]).sum())
    return _share(tied, len(examples))


def _share(count: int, total: int) -> str:
    return f"{count} of {total} ({100 * count / max(1, total):.1f}%)"


def _repeat_share(dataset, examples) -> str:
    """How many of ``examples``' labels repeat an item their user had before (dropped from scoring under
    ``exclude_history: history``, kept under ``none``)."""
    from bench.evaluation import excluded_labels
    from bench.tasks import get_task

    task = get_task("next_item")
    repeats = int(excluded_labels(task.under(task.protocol(exclude_history="history")), dataset, examples).sum())
    return _share(repeats, len(examples))


def _later_than_test(dataset, split) -> str:
    """How many training labels come after the median test label: training on the future."""
    import numpy as np

    timestamps = dataset.events["timestamp"].to_numpy()
    if not len(split.test):
        return "—"
    median = np.median(timestamps[split.test.label_positions])
    return _share(int((timestamps[split.train.label_positions] > median).sum()), len(split.train))


def _split_facts(dataset, split, prefixes) -> dict[str, object]:
    """One column of ``bench data describe``'s split table, by row name (``prefixes``: the same split's
    training prefixes)."""
    from bench.data.windows import TEMPORAL_CUTS

    cuts = "—" if split.cuts is None else " / ".join(
        datetime.fromtimestamp(cut, timezone.utc).strftime("%Y-%m-%d %H:%M") for cut in split.cuts)
    return {"train examples": len(split.train), "train examples (windows: prefixes)": len(prefixes.train),
            "valid examples": len(split.valid), "test examples": len(split.test),
            **{f"{part} label ties (same timestamp)": _tied_share(dataset, split[part]) for part in ("valid", "test")},
            **{f"{part} labels repeating history": _repeat_share(dataset, split[part]) for part in ("valid", "test")},
            "train labels after the median test label": _later_than_test(dataset, split),
            f"cuts (quantiles {' / '.join(f'{q:g}' for q in TEMPORAL_CUTS)} of all times, UTC)": cuts}


def cmd_data_describe(args: argparse.Namespace) -> int:
    from bench.data import build_split, load_dataset
    from bench.data.windows import SPLIT_KINDS

    dataset = load_dataset(args.dataset, args.path, **_key_values(args.option))
    started = time.perf_counter()
    splits = {kind: build_split(dataset, args.seq_len, kind) for kind in SPLIT_KINDS}
    windows_seconds = (time.perf_counter() - started) / len(splits)
    facts = [
        ("users", dataset.n_users), ("items", dataset.n_items), ("events", len(dataset.events)),
        ("categories", len(dataset.categories)), ("reviews", "yes" if dataset.has_reviews else "no"),
        ("prepare seconds (load or cache hit)", f"{dataset.prepare_seconds:.2f}"),
        ("window seconds", f"{windows_seconds:.3f}"),
    ]
    columns = [_split_facts(dataset, split, build_split(dataset, args.seq_len, kind, "prefixes"))
               for kind, split in splits.items()]
    print(f"dataset {dataset.name}")
    print(tabulate(facts, tablefmt="plain"))
    print(f"\nsplits at N={args.seq_len} (protocol.split)")
    print(tabulate([[name, *(column[name] for column in columns)] for name in columns[0]],
                   headers=["", *splits], tablefmt="simple"))
    handled = [(name, count) for name, count in dataset.notes.items() if count]
    if handled:
        print("\nrows handled while preparing:")
        print(tabulate(handled, tablefmt="plain"))
    return 0


def _cache(args: argparse.Namespace) -> Path | None:
    """``--cache`` as given; None lets every node use its own default ($USERLLM_BENCH_CACHE, else
    ~/.cache/userllm-bench)."""
    return Path(args.cache).expanduser() if args.cache else None


def _suite_path(name: str) -> Path:
    path = Path(name)
    if not path.exists() and (Path("suites") / f"{name}.yaml").exists():
        return Path("suites") / f"{name}.yaml"
    return path


def _selected_suite(args: argparse.Namespace):
    """The suite named on the command line with its overrides applied and ``--only`` selected."""
    from bench.suite import load_suite, select

    dataset = None
    if args.dataset:
        dataset = {"name": args.dataset, "options": _key_values(args.option)}
        if args.path:
            dataset["path"] = args.path
    return select(load_suite(_suite_path(args.suite), sets=args.set, dataset=dataset, budget_scale=args.budget,
                             preset=args.preset, dtype=args.dtype, kernels=args.kernels), args.only)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.lock import results_lock
    from bench.runner import run_suite
    from bench.suite import check_histories
    from bench.tracking import check_loggers

    suite = _selected_suite(args)
    notes = check_histories(suite)
    check_loggers(args.log)
    samples = sum(search.target for _, search in suite.searches)
    finals = sum(len(search.final_seeds) for _, search in suite.searches)
    searched = f"{samples} search samples of {len(suite.searches)} searched configurations"
    print(f"suite {suite.name}: {len(suite.trials) + samples + finals} trials ({searched}"
          + (f", {finals} final trials of the best" if finals else "") + f"); results in {Path(args.results) / suite.name}")
    for note in sorted(set(suite.skipped)):
        print(f"  skipped: {note}")
    for name, handled in notes.items():
        print(f"  data: {name}: rows handled while preparing: "
              + ", ".join(f"{what} {count}" for what, count in handled.items()) + " (kept in each record's data_notes)")
    caps = sorted({(s.label, s.budget.max_test_examples) for s in suite.trials + [x for x, _ in suite.searches]
                   if s.budget.max_test_examples is not None})
    for label, cap in caps:
        print(f"  note: {label} is evaluated on at most {cap} test examples (budget.max_test_examples); "
              "its results are marked capped")
    with results_lock(Path(args.results) / suite.name):
        summary = run_suite(suite, Path(args.results), _cache(args), address=args.address,
                            show_progress=not args.no_progress, verbose=args.verbose, keep_stale=args.keep_stale,
                            loggers=args.log)
    if summary.interrupted:
        print(f"stopped by {summary.interrupted}: {summary.finished} trial(s) finished (records kept), "
              f"{summary.running} stopped while running and {summary.not_started} not started; nothing is left "
              f"running; bench run {args.suite} runs the {summary.running + summary.not_started} without a record")
        return summary.exit_code
    print(f"ran {summary.ran} trial(s); {summary.skipped_done} already had a finished record")
    if summary.replaced:
        print(f"{summary.replaced} search sample(s) failed and were replaced by others (their records say why)")
    if summary.stale:
        print(f"{summary.stale} finished record(s) were made by other sources: "
              + ("kept (--keep-stale); the report marks them" if args.keep_stale else "rerun"))
    if summary.failed:
        print(f"{len(summary.failed)} trial(s) failed: {', '.join(summary.failed)} "
              f"(tracebacks in {Path(args.results) / suite.name / 'trials'})")
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """One line per trial of the suite: ok, stale (other sources made it), failed, damaged or missing; exit 1 unless
    every trial has a finished record made by these sources."""
    from bench.provenance import same_sources
    from bench.registry import get_method
    from bench.store import read_checked, record_path

    suite = _selected_suite(args)
    counts: dict[str, int] = {}
    for spec in suite.trials:
        record, problem = read_checked(record_path(suite.name, spec.trial_id, Path(args.results)))
        if problem:
            state = "damaged"
        elif record is None:
            state = "missing"
        elif record.get("status") != "ok":
            state = "failed"
        else:
            state = "ok" if same_sources(record, get_method(spec.method)) else "stale"
        counts[state] = counts.get(state, 0) + 1
        print(f"[{state}] {spec.describe()} [{spec.trial_id}]")
    print(f"{suite.name}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0 if set(counts) <= {"ok"} else 1


def cmd_profile(args: argparse.Namespace) -> int:
    from bench.profile import profile_suite, profile_table
    from bench.suite import check_histories

    suite = _selected_suite(args)
    check_histories(suite)
    print(f"suite {suite.name}: profiling {len(suite.trials) + len(suite.searches)} trial(s) one at a time, "
          f"each at {args.steps} steps and at most {args.examples} validation and test examples")
    rows = profile_suite(suite, _cache(args), args.steps, args.examples, args.address)
    print(profile_table(rows))
    return 1 if any("error" in row for row in rows) else 0


def cmd_check_leakage(args: argparse.Namespace) -> int:
    import tempfile

    from bench.data.cache import cache_root
    from bench.leakage import check_leakage
    from bench.registry import get_method, load_methods
    from bench.suite import check_histories, select, validate_suite

    if args.suite:
        suite = select(_selected_suite(args), [args.method])
    else:
        load_methods()
        cls = get_method(args.method)
        raw = {"name": "leakage", "datasets": ["ml-100k"], "tasks": list(cls.tasks[:1]), "seq_lens": [50],
               "methods": [{"method": args.method}]}
        suite = validate_suite(raw, Path(f"<bench check-leakage {args.method}>"))
    check_histories(suite)
    specs = suite.trials + [spec for spec, _ in suite.searches]
    leaks = 0
    with tempfile.TemporaryDirectory(prefix="bench-leakage-") as scratch:
        for spec in specs:
            result = check_leakage(spec.shortened(args.examples, args.steps), Path(scratch), _cache(args) or cache_root())
            what = f"{spec.label} {spec.dataset.name}/{spec.task}/N={spec.seq_len}"
            if result.error:
                leaks += 1
                print(f"[error] {what}: the method failed: {result.error}", flush=True)
            elif result.leaks:
                leaks += 1
                if result.changed:
                    print(f"[LEAK] {what}: {result.changed} of {result.examples} test predictions changed when the "
                          f"test label events were replaced and the method refitted (first: example "
                          f"{result.first['example']}, user {result.first['user']}); {result.method} reads its test "
                          "labels", flush=True)
                if result.past_window:
                    print(f"[LEAK] {what}: {result.past_window} of {result.examples} test predictions changed when "
                          f"the events before their input windows were replaced; {result.method} reads past its "
                          "window", flush=True)
            else:
                print(f"[ok]   {what}: {result.examples} test predictions unchanged with the test label events "
                      "replaced and the method refitted, and with the events before the windows replaced", flush=True)
    return 1 if leaks else 0


def cmd_probe_knowledge(args: argparse.Namespace) -> int:
    import torch

    from bench.data import load_dataset
    from bench.data.cache import cache_root
    from bench.knowledge import save
    from bench.models.knowledge import probe_knowledge
    from bench.models.llm import load_llm

    dataset = load_dataset(args.dataset, args.path, **_key_values(args.option))
    model, tokenizer = load_llm(args.llm, _cache(args) or cache_root())
    model.eval()
    started = time.perf_counter()
    rows = probe_knowledge(dataset, model, tokenizer, args.items, args.pairs, args.seed)
    facts = {"items": args.items, "pairs": args.pairs, "seed": args.seed, "torch": torch.__version__,
             "seconds": round(time.perf_counter() - started, 1)}
    path = save(Path(args.results), dataset.name, args.llm, rows, facts)
    print(f"what {args.llm} knows of {dataset.name}'s catalog, with no user data ({facts['seconds']:.0f} s; {path})")
    print(tabulate([(r["probe"], r["n"], f"{r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                     f"{r['reference']}: {r['reference_accuracy']:.3f}",
                     f"{r['diff']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]", f"{r['p']:.2g}")
                    for r in rows], headers=["probe", "n", "LLM [95% CI]", "reference", "LLM - reference", "p"]))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.registry import INPUTS, build_params, declared_inputs, load_methods, param_defaults
    from bench.tasks import TASKS

    what = args.what
    if what in ("methods", "all"):
        rows = []
        for name, cls in sorted(load_methods().items()):
            declared = declared_inputs(cls, build_params(cls, {}, f"method {name}"))
            rows.append((name, "\n".join(cls.tasks), ", ".join(declared["reads"]) or "-", declared["supervision"],
                         ", ".join(f"{k}={v}" for k, v in param_defaults(cls).items()) or "-"))
        print(tabulate(rows, headers=["method", "tasks", "reads (at defaults)", "learns from", "parameters (defaults)"],
                       maxcolwidths=[None, None, 18, 14, 56]))
        print("reads: " + "; ".join(f"{name}: {meaning}" for name, meaning in INPUTS.items()))
    if what in ("datasets", "all"):
        print()
        print(tabulate([(s.name, s.description) for s in DATASETS.values()], headers=["dataset", "description"]))
    if what in ("tasks", "all"):
        print()
        print(tabulate([(t.name, t.description) for t in TASKS.values()], headers=["task", "description"]))
    if what in ("suites", "all"):
        from bench.suite import read_yaml

        rows = []
        for path in sorted(Path("suites").glob("*.yaml")):
            raw = read_yaml(path)
            rows.append((path.stem, ", ".join(raw.get("feeds", [])), raw.get("description", "")))
        print()
        print(tabulate(rows, headers=["suite", "feeds", "description"], maxcolwidths=[None, None, 80]))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report.render import render_report

    print(render_report(Path(args.results), suites=args.suite, table=args.table, figure=args.figure,
                        fmt=args.format, out=Path(args.out) if args.out else None, versus=args.versus,
                        wide=args.wide, html_dir=Path(args.html) if args.html else None, tuning=args.tuning))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _logger(text: str) -> Logger:
    try:
        return parse_log(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _suite_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite and its overrides, shared by ``run`` and ``profile``."""
    parser.add_argument("suite", help="suite file, or the name of one in suites/")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a suite value, e.g. budget.steps=50 or methods.0.params.dim=64")
    parser.add_argument("--dataset", help="run on this dataset instead of the suite's")
    parser.add_argument("--path", help="folder of --dataset's files")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="option of --dataset")
    parser.add_argument("--budget", type=float, metavar="FACTOR", help="scale every trial's training steps")
    parser.add_argument("--only", action="append", default=[], metavar="LABEL",
                        help="only the trials of this label or method (repeatable)")
    parser.add_argument("--preset", choices=["paper"],
                        help="paper: every trial gets the paper's budget for its dataset and task (appendix table 9)")
    parser.add_argument("--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the LLM methods' dtype (default auto: bf16 on a CUDA GPU that supports it, fp32 on a CPU "
                             "without native bf16, the faster of the two by a measured step on a CPU with "
                             "avx512_bf16/AMX); recorded with every trial, with why")
    parser.add_argument("--kernels", choices=["native", "reproducible"],
                        help="native: each CPU's fastest kernels (numbers can move across CPU kinds); reproducible: "
                             "every kernel pinned to AVX2 and fp32 on one thread per trial, the same numbers on any "
                             "x86 CPU (default: the suite's kernels:, else native)")
    parser.add_argument("--cache", help="cache for prepared data, models and checkpoints, used at this path on every "
                                        "node (default: each node's $USERLLM_BENCH_CACHE, else ~/.cache/userllm-bench)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="USER-LLM benchmark harness")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="datasets: list them, describe one")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    data_commands.add_parser("list", help="the datasets the harness can load").set_defaults(func=cmd_data_list)
    describe = data_commands.add_parser("describe", help="prepare a dataset and print its statistics")
    describe.add_argument("dataset")
    describe.add_argument("--seq-len", type=_positive, default=50, help="history length N (default 50)")
    describe.add_argument("--path", help="folder with the dataset's files (external datasets)")
    describe.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                          help="dataset option, e.g. category=Movies_and_TV")
    describe.set_defaults(func=cmd_data_describe)

    run = commands.add_parser("run", help="run a suite's trials under Ray Tune (only those without a finished record)")
    _suite_arguments(run)
    run.add_argument("--results", default="results", help="results root (default: results/)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress lines (a trial's validation checks and losses, at most one per 30 s)")
    run.add_argument("--keep-stale", action="store_true",
                     help="keep finished records made by other sources instead of rerunning them")
    run.add_argument("--verbose", action="store_true",
                     help="also Ray's and Tune's own banners and warnings, and the trials' own output (progress bars)")
    run.add_argument("--log", action="append", type=_logger, default=[], metavar="KIND[=URI]",
                     help="experiment tracking, repeatable: tensorboard, csv (Tune's files under RESULTS/SUITE/tune) "
                          "or mlflow (default store: RESULTS/SUITE/mlflow.db; mlflow=URI for a server): each trial's "
                          "parameters, validation curve and final metrics")
    run.set_defaults(func=cmd_run)

    profile = commands.add_parser("profile", help="measure each trial of a suite briefly (s/step, s/example, peak "
                                                  "memory) and estimate the full run; writes no results")
    _suite_arguments(profile)
    profile.add_argument("--steps", type=_positive, default=20, help="training steps per trial (default 20)")
    profile.add_argument("--examples", type=_positive, default=16,
                         help="at most this many validation and test examples per trial (default 16)")
    profile.set_defaults(func=cmd_profile)

    leakage = commands.add_parser("check-leakage", help="fit a method, predict the test examples on the true data "
                                                        "and with their label events replaced: any change is a leak")
    leakage.add_argument("method", help="a method name (or, with --suite, a label or method of the suite)")
    leakage.add_argument("--suite", help="check the suite's trials of METHOD (default: METHOD's defaults on "
                                         "ml-100k, N=50, its first task)")
    leakage.add_argument("--steps", type=_positive, help="training steps per checked trial (default: the budget's)")
    leakage.add_argument("--examples", type=_positive, default=64,
                         help="test (and validation) examples per checked trial (default 64)")
    leakage.set_defaults(func=cmd_check_leakage, set=[], option=[], dataset=None, path=None, budget=None,
                         preset=None, only=[], cache=None, dtype="auto", kernels=None)

    knowledge = commands.add_parser("probe-knowledge", help="what an LLM knows of a dataset's catalog with no user "
                                                            "data: a title's genre, the more popular of two titles")
    knowledge.add_argument("--dataset", default="ml-100k", help="dataset (default ml-100k)")
    knowledge.add_argument("--path", help="folder with the dataset's files (external datasets)")
    knowledge.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="dataset option")
    knowledge.add_argument("--llm", default="smollm2-135m", help="the embedded smollm2-135m (default) or a local "
                                                                 "Hugging Face model folder")
    knowledge.add_argument("--items", type=_positive, default=200, help="titles asked their genre (default 200)")
    knowledge.add_argument("--pairs", type=_positive, default=200, help="title pairs asked (default 200)")
    knowledge.add_argument("--seed", type=int, default=0, help="which titles and pairs are drawn (default 0)")
    knowledge.add_argument("--cache", help="cache of the converted LLM (default $USERLLM_BENCH_CACHE, else "
                                           "~/.cache/userllm-bench)")
    knowledge.add_argument("--results", default="results", help="results root: the probe is kept in "
                                                                "RESULTS/knowledge/ for the reports (default: results/)")
    knowledge.set_defaults(func=cmd_probe_knowledge)

    status = commands.add_parser("status", help="each trial of a suite: ok, stale, failed or missing (exit 1 "
                                                "unless all ok)")
    _suite_arguments(status)
    status.add_argument("--results", default="results", help="results root (default: results/)")
    status.set_defaults(func=cmd_status)

    lister = commands.add_parser("list", help="methods (with parameters), datasets, tasks, suites")
    lister.add_argument("what", nargs="?", default="all", choices=["all", "methods", "datasets", "tasks", "suites"])
    lister.set_defaults(func=cmd_list)

    report = commands.add_parser("report", help="tables and figures from results")
    report.add_argument("--suite", action="append", help="only these suites' results (default: all)")
    view = report.add_mutually_exclusive_group()
    view.add_argument("--table", type=int, help="a paper table (2-14): its layout, our numbers, the paper's beside")
    view.add_argument("--figure", choices=_Names("bench.report.figures", "FIGURES"),
                      help="a figure as PNG: 3 (recall vs history length), 0 (cost/quality), "
                           "efficiency (table 3: tokens and seconds per example vs N), frontier (test metric against "
                           "total training FLOPs), curves (validation metric against step and seconds)")
    view.add_argument("--tuning", action="store_true",
                      help="each tuned search (a suite with tune:): the best configuration by validation, its final "
                           "trials' validation and test scores, the selection's optimism, the search's cost")
    view.add_argument("--versus", metavar="LABEL",
                      help="each configuration against the method labelled LABEL on the same test examples: "
                           "paired difference with its bootstrap CI, examples won and lost")
    report.add_argument("--format", default="terminal", choices=["terminal", "markdown", "latex", "csv"])
    report.add_argument("--html", metavar="DIR",
                        help="write DIR/index.html: one self-contained page with the summary, paired comparisons "
                             "(against --versus LABEL, default Popularity), curves, cost/quality, the paper tables "
                             "fed, and each run's machine and versions")
    report.add_argument("--wide", action="store_true",
                        help="the summary with every column (configuration, every metric, costs) in the terminal; "
                             "markdown, latex and csv always have them")
    report.add_argument("--results", default="results", help="results root (default: results/)")
    report.add_argument("--out", help="write the table or figure here")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    pin_mmap_threshold()  # check-leakage and profile fit methods in this process
    try:
        return args.func(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run stops itself: bench.runner)
        print("stopped by SIGINT (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
