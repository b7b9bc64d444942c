"""The `bench` command: data, run, report, list, profile."""

from __future__ import annotations

import argparse
import sys
import time

from tabulate import tabulate

from bench.errors import BenchError


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


def cmd_data_describe(args: argparse.Namespace) -> int:
    from bench.data import build_split, load_dataset

    dataset = load_dataset(args.dataset, args.path, **_key_values(args.option))
    started = time.perf_counter()
    split = build_split(dataset, args.seq_len)
    windows_seconds = time.perf_counter() - started
    facts = [
        ("users", dataset.n_users), ("items", dataset.n_items), ("events", len(dataset.events)),
        ("categories", len(dataset.categories)), ("reviews", "yes" if dataset.has_reviews else "no"),
        (f"train examples (N={args.seq_len})", len(split.train)),
        (f"valid examples (N={args.seq_len})", len(split.valid)),
        (f"test examples (N={args.seq_len})", len(split.test)),
        ("prepare seconds (load or cache hit)", f"{dataset.prepare_seconds:.2f}"),
        ("window seconds", f"{windows_seconds:.3f}"),
    ]
    print(f"dataset {dataset.name}")
    print(tabulate(facts, tablefmt="plain"))
    handled = [(name, count) for name, count in dataset.notes.items() if count]
    if handled:
        print("\nrows handled while preparing:")
        print(tabulate(handled, tablefmt="plain"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="USER-LLM benchmark harness")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="datasets: list them, describe one")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    data_commands.add_parser("list", help="the datasets the harness can load").set_defaults(func=cmd_data_list)
    describe = data_commands.add_parser("describe", help="prepare a dataset and print its statistics")
    describe.add_argument("dataset")
    describe.add_argument("--seq-len", type=int, default=50, help="history length N (default 50)")
    describe.add_argument("--path", help="folder with the dataset's files (external datasets)")
    describe.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                          help="dataset option, e.g. category=Movies_and_TV")
    describe.set_defaults(func=cmd_data_describe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
