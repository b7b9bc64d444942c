"""Declarative suites: YAML -> validated Suite -> trial specs (grid expansion, stable content hash).

Every problem is found before anything runs and reported as one ConfigError naming the file, the key
path and what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.context import Budget
from bench.data.registry import check_options, dataset_spec
from bench.data.windows import SPLIT_KINDS, WINDOW_KINDS
from bench.errors import ConfigError
from bench.kernels import KERNELS
from bench.paper_budgets import PRESETS, paper_budget, paper_pretraining
from bench.precision import DTYPES
from bench.registry import (
    build_params,
    coerce,
    declared_inputs,
    get_method,
    has_param,
    load_methods,
    nested,
    param_defaults,
    params_json,
)
from bench.spec import DatasetRef, TrialSpec, trial_hash
from bench.tasks import Protocol, get_task

TOP_KEYS = {"name": str, "description": str, "feeds": list, "plugins": list, "datasets": list, "tasks": list,
            "seq_lens": list, "seeds": list, "budget": dict, "protocol": dict, "resources": dict, "methods": list,
            "tune": dict, "kernels": str}
METHOD_KEYS = {"method": str, "label": str, "params": dict, "grid": dict, "search": dict, "budget": dict,
               "tasks": list, "seq_lens": list, "protocol": dict}
DATASET_KEYS = {"name": str, "path": str, "options": dict}
PROTOCOL_KEYS = {"ks": list, "exclude_history": (bool, str), "favorite": str, "primary": dict, "split": str,
                 "windows": str}
METHOD_PROTOCOL_KEYS = {"split": str, "windows": str}  # what one method entry may set apart from the suite's protocol
RESOURCE_KEYS = {"cpu": int, "gpu": (int, float, str), "memory_gb": (int, float)}
BUDGET_PREFIX = "budget."  # a search space key that samples a budget field, not a method parameter
DEFAULT_MEMORY_GB = 4  # host memory a trial asks Ray for: trials are packed onto a node only where they fit
SEARCH_KEYS = {"space": dict, "samples": int, "metric": str}
TUNE_KEYS = {"samples": int, "metric": str, "scheduler": dict, "final_seeds": list}
SCHEDULER_KEYS = {"grace": int, "reduction": int}
DISTRIBUTIONS = {"loguniform": 2, "uniform": 2, "randint": 2, "choice": None}


@dataclass(frozen=True)
class SearchSpec:
    """A Ray Tune search over method parameters or budget fields, chosen by a validation metric. In a
    tuned suite (``tune:``) its samples are not tested: ``scheduler`` (ASHA's grace period in training
    examples, the same currency for every method, and reduction factor) stops bad samples early at their validation checks, and the best sample
    by validation is trained again on each of ``final_seeds`` and tested once."""

    space: dict[str, dict[str, list[Any]]]
    samples: int
    metric: str
    scheduler: tuple[int, int] | None = None
    final_seeds: tuple[int, ...] = ()

    @property
    def tuned(self) -> bool:
        return bool(self.final_seeds)

    def combinations(self) -> list[dict[str, Any]] | None:
        """Every configuration of a space of choices only (None where a distribution is continuous)."""
        if any(kind != "choice" for dist in self.space.values() for kind in dist):
            return None
        keys = list(self.space)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.space[k]["choice"] for k in keys))]

    @property
    def exhaustive(self) -> bool:
        """A space of choices with no more configurations than samples: each is tried once, none twice."""
        combinations = self.combinations()
        return combinations is not None and len(combinations) <= self.samples

    @property
    def target(self) -> int:
        """How many distinct samples the search takes: its samples, or every configuration of a smaller space."""
        return len(self.combinations()) if self.exhaustive else self.samples

    def identity(self) -> dict[str, Any]:
        """What names the search (its group id): a plain search as before tuned suites existed."""
        out = dataclasses.asdict(self)
        if not self.tuned:
            del out["scheduler"], out["final_seeds"]
        return out


@dataclass(frozen=True)
class Tuning:
    """A suite's shared tuning budget (``tune:``): every method's search gets the same samples, metric,
    scheduler and final seeds; a method names only its space."""

    samples: int
    metric: str
    scheduler: tuple[int, int] | None
    final_seeds: tuple[int, ...]


@dataclass
class Suite:
    name: str
    path: Path
    description: str
    feeds: list[str]
    plugins: list[str]
    resources: dict[str, Any]
    kernels: str = "native"  # bench.kernels: one mode for every trial (the pins are per worker process)
    trials: list[TrialSpec] = field(default_factory=list)
    searches: list[tuple[TrialSpec, SearchSpec]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def select(suite: Suite, only: list[str]) -> Suite:
    """The suite restricted to trials whose label or method is in ``only`` (``bench run --only``)."""
    if not only:
        return suite
    keep = set(only)
    known = {name for spec in suite.trials + [s for s, _ in suite.searches] for name in (spec.label, spec.method)}
    unknown = sorted(keep - known)
    if unknown:
        raise ConfigError(f"--only {', '.join(unknown)}: no such label or method in suite {suite.name}; "
                          f"expected some of {', '.join(sorted(known))}")
    return dataclasses.replace(suite, trials=[s for s in suite.trials if {s.label, s.method} & keep],
                               searches=[(s, x) for s, x in suite.searches if {s.label, s.method} & keep])


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _check_keys(mapping: Any, allowed: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise _fail(where, f"got {type(mapping).__name__}; expected a mapping with keys {', '.join(allowed)}")
    for key, value in mapping.items():
        if key not in allowed:
            raise _fail(f"{where}.{key}" if where else key, f"unknown key; expected one of {', '.join(allowed)}")
        expected = allowed[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise _fail(f"{where}.{key}" if where else key, f"got {value!r} ({type(value).__name__}); expected {names}")
    return mapping


def _ints(values: list[Any], where: str, low: int) -> list[int]:
    for i, value in enumerate(values):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise _fail(f"{where}[{i}]", f"got {value!r}; expected an integer >= {low}")
    return values


def _strings(values: list[Any], where: str) -> list[str]:
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise _fail(f"{where}[{i}]", f"got {value!r}; expected a string")
    return values


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


class _SuiteLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the
    last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base``: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found the key {key!r} twice", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep)


def _unshared(value: Any, budget: list[int]) -> Any:
    """A copy in which every alias (``*name``) is a value of its own, so that ``--set`` and the suite's
    expansion never edit two places at once; at most MAX_VALUES values once aliases are expanded."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"more than {MAX_VALUES:,} values once its aliases are expanded; expected a suite")
    if isinstance(value, dict):
        return {key: _unshared(item, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item, budget) for item in value]
    return value


MAX_VALUES = 100_000


def read_yaml(path: Path) -> dict[str, Any]:
    """Safe-load a suite file (YAML's standard tags only; aliases expanded into copies; a key given twice
    is an error); every problem names the file and, for YAML errors, the line and column."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a suite file (YAML)")
    if not path.is_file():
        raise ConfigError(f"{path}: suite file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); expected a readable suite file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                          "expected a YAML suite file") from None
    try:
        raw = yaml.load(text, Loader=_SuiteLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        hint = "; only YAML's standard tags are allowed" if "for the tag" in str(exc.problem) else ""
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ConfigError(f"{path}:{mark.line + 1}:{mark.column + 1}: {kind}: {exc.problem}{hint}") from None
    except yaml.reader.ReaderError as exc:  # control characters in the text
        raise ConfigError(f"{path}: not a YAML text file (character #x{exc.character:04x} at offset "
                          f"{exc.position}: {exc.reason})") from None
    if raw is None:
        raise ConfigError(f"{path}: empty; expected a suite mapping with datasets, tasks and methods")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, got {type(raw).__name__}")
    try:
        return _unshared(raw, [MAX_VALUES])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_suite(path: str | Path, sets: list[str] = (), dataset: dict[str, Any] | None = None,
               budget_scale: float | None = None, preset: str | None = None, dtype: str = "auto",
               kernels: str | None = None) -> Suite:
    """Read, override, validate and expand a suite. ``preset="paper"`` gives every trial the paper's
    budget for its dataset and task (appendix table 9); ``dtype`` (auto, fp32, bf16) is every trial's
    (``bench.precision``); ``kernels`` (native, reproducible) overrides the suite's (``bench.kernels``).
    Raises ConfigError naming file and key path."""
    path = Path(path)
    if budget_scale is not None and not budget_scale > 0:
        raise ConfigError(f"--budget {budget_scale}: expected a factor > 0 (0.5 halves every trial's steps)")
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    raw = read_yaml(path)
    for assignment in sets:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {assignment!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {assignment!r}: the value is not YAML ({str(exc).splitlines()[0]})") from None
        try:
            _set_path(raw, key, value)
        except (IndexError, ValueError, TypeError, AttributeError, KeyError):
            raise ConfigError(f"--set {assignment!r}: {key} does not name a place in {path}") from None
    if dataset is not None:
        raw["datasets"] = [dataset]
    if kernels is not None:
        raw["kernels"] = kernels
    return validate_suite(raw, path, budget_scale, preset, dtype)


def validate_suite(raw: dict[str, Any], path: Path, budget_scale: float | None = None,
                   preset: str | None = None, dtype: str = "auto") -> Suite:
    """A suite from its mapping (what a suite file holds); errors name ``path`` and the key. A ``dtype``
    other than auto is part of every trial's spec (auto is resolved where the trial runs and recorded)."""
    try:
        return _validate(raw, path, budget_scale, preset, dtype)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _validate(raw: dict[str, Any], path: Path, budget_scale: float | None, preset: str | None = None,
              dtype: str = "auto") -> Suite:
    _check_keys(raw, TOP_KEYS, "")
    for required in ("datasets", "tasks", "methods"):
        if required not in raw:
            raise _fail(required, "missing; every suite names datasets, tasks and methods")
    plugins = _strings(raw.get("plugins", []), "plugins")
    load_methods(tuple(plugins))

    datasets = []
    for i, entry in enumerate(raw["datasets"]):
        where = f"datasets[{i}]"
        entry = {"name": entry} if isinstance(entry, str) else entry
        _check_keys(entry, DATASET_KEYS, where)
        if "name" not in entry:
            raise _fail(where, "missing name")
        try:
            spec = dataset_spec(entry["name"])
            check_options(spec, entry.get("options", {}))
        except ConfigError as exc:
            raise _fail(f"{where}", str(exc)) from None
        dataset_path = entry.get("path")
        if not spec.embedded and not dataset_path:
            raise _fail(f"{where}.path", f"dataset {spec.name} is not embedded; give the folder with its files")
        if dataset_path:
            resolved = Path(dataset_path).expanduser().resolve()
            if not resolved.exists():
                raise _fail(f"{where}.path", f"{dataset_path} does not exist")
            dataset_path = str(resolved)
        datasets.append({"name": spec.name, "path": dataset_path, "options": dict(entry.get("options", {}))})

    tasks = _strings(raw["tasks"], "tasks")
    for i, name in enumerate(tasks):
        get_task(name, f"tasks[{i}]")
    seq_lens = _ints(raw.get("seq_lens", [50]), "seq_lens", 1)
    seeds = _ints(raw.get("seeds", [0]), "seeds", 0)
    protocol = _check_keys(raw.get("protocol", {}), PROTOCOL_KEYS, "protocol")
    if "ks" in protocol:
        _ints(protocol["ks"], "protocol.ks", 1)
    for task_name, metric in protocol.get("primary", {}).items():
        where = f"protocol.primary.{task_name}"
        names = get_task(task_name, where).metric_names(_protocol_for(task_name, {k: v for k, v in protocol.items()
                                                                           if k != "primary"}))
        if metric not in names:
            raise _fail(where, f"got {metric!r}; task {task_name} reports {', '.join(names)}")
    resources = _check_keys(raw.get("resources", {}), RESOURCE_KEYS, "resources")
    if resources.get("cpu", 1) < 1:
        raise _fail("resources.cpu", f"got {resources['cpu']}; expected an integer >= 1")
    gpu = resources.get("gpu", "auto")
    if not (gpu == "auto" or (isinstance(gpu, int) and gpu >= 0) or (isinstance(gpu, float) and 0 < gpu < 1)):
        raise _fail("resources.gpu", f"got {gpu!r}; expected 'auto', an integer >= 0 or a fraction of one GPU "
                                     "between 0 and 1 (0.25: four trials share a GPU)")
    memory_gb = resources.get("memory_gb", DEFAULT_MEMORY_GB)
    if isinstance(memory_gb, bool) or not memory_gb > 0:
        raise _fail("resources.memory_gb", f"got {memory_gb!r}; expected the GiB of host memory a trial may use (> 0)")
    base_budget = _check_keys(raw.get("budget", {}), {f.name: object for f in dataclasses.fields(Budget)}, "budget")
    _budget(base_budget, {}, None, "budget")
    tuning = _tuning(raw.get("tune"), seeds)

    kernels = raw.get("kernels", "native")
    if kernels not in KERNELS:
        raise _fail("kernels", f"got {kernels!r}; expected one of {', '.join(KERNELS)}")
    if kernels == "reproducible" and dtype == "bf16":
        raise _fail("kernels", "reproducible computes in fp32; --dtype bf16 contradicts it")
    suite = Suite(name=raw.get("name", path.stem), path=path, description=raw.get("description", ""),
                  feeds=_strings(raw.get("feeds", []), "feeds"), plugins=plugins,
                  resources={"cpu": resources.get("cpu", 2), "gpu": gpu, "memory_gb": memory_gb}, kernels=kernels)
    if not raw["methods"]:
        raise _fail("methods", "empty; name at least one method")
    for i, entry in enumerate(raw["methods"]):
        _expand_method(suite, entry, f"methods[{i}]", datasets, tasks, seq_lens, seeds, protocol, base_budget,
                       budget_scale, preset, dtype, tuning, kernels)
    if not suite.trials and not suite.searches:
        raise _fail("methods", f"no trial to run: {'; '.join(sorted(set(suite.skipped)))}; expected at least one "
                               "method that does one of the suite's tasks")
    labels: dict[str, str] = {}
    for spec in suite.trials:
        other = labels.setdefault(spec.trial_id, spec.label)
        if other != spec.label:
            raise ConfigError(f"{path}: methods labelled {other!r} and {spec.label!r} have one configuration "
                              f"({spec.method} on {spec.dataset.name}/{spec.task}/N={spec.seq_len} "
                              f"seed {spec.seed}): one trial would stand for both; expected distinct "
                              "configurations or one label")
    return suite


def _budget(base: dict[str, Any], override: dict[str, Any], scale: float | None, where: str) -> dict[str, Any]:
    hints = typing.get_type_hints(Budget)
    merged = {key: coerce(value, hints[key], f"{where}.{key}") for key, value in {**base, **override}.items()}
    try:
        budget = Budget(**merged)
    except (TypeError, ValueError) as exc:
        raise _fail(where, str(exc)) from None
    if scale is not None:
        budget = dataclasses.replace(budget, steps=max(1, round(budget.steps * scale)),
                                     flops=None if budget.flops is None else budget.flops * scale)
    return budget.to_dict()


def _protocol_for(task_name: str, overrides: dict[str, Any]) -> Protocol:
    """The task's protocol with the suite's ``protocol:`` overrides it takes, its primary metric where
    ``protocol.primary`` names one for this task, and the split every task of the suite shares."""
    task = get_task(task_name)
    accepted = inspect.signature(task.protocol).parameters
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if k in accepted}
    primary = overrides.get("primary", {}).get(task_name, "")
    return dataclasses.replace(task.protocol(**kwargs), primary=primary,
                               split=overrides.get("split", "leave_one_out"),
                               windows=overrides.get("windows", "exact"))


def _expand_method(suite: Suite, entry: Any, where: str, datasets: list[dict[str, Any]], tasks: list[str],
                   seq_lens: list[int], seeds: list[int], protocol: dict[str, Any], base_budget: dict[str, Any],
                   budget_scale: float | None, preset: str | None = None, dtype: str = "auto",
                   tuning: Tuning | None = None, kernels: str = "native") -> None:
    _check_keys(entry, METHOD_KEYS, where)
    if "method" not in entry:
        raise _fail(where, "missing method")
    cls = get_method(entry["method"], f"{where}.method")
    params, grid = dict(entry.get("params", {})), entry.get("grid", {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _fail(f"{where}.grid.{key}", f"got {values!r}; expected a non-empty list of values")
    budget_fields = {f.name: object for f in dataclasses.fields(Budget)}
    budget_override = _check_keys(entry.get("budget", {}), budget_fields, f"{where}.budget")
    budget = _budget(base_budget, budget_override, budget_scale, f"{where}.budget")
    entry_tasks = _strings(entry.get("tasks", tasks), f"{where}.tasks")
    entry_lens = _ints(entry.get("seq_lens", seq_lens), f"{where}.seq_lens", 1)
    search = _search_spec(entry.get("search"), cls, f"{where}.search", tuning)
    own = _check_keys(entry.get("protocol", {}), METHOD_PROTOCOL_KEYS, f"{where}.protocol")
    for key, kinds in (("split", SPLIT_KINDS), ("windows", WINDOW_KINDS)):
        if own.get(key, kinds[0]) not in kinds:
            raise _fail(f"{where}.protocol.{key}", f"got {own[key]!r}; expected one of {', '.join(kinds)}")
    protocol = {**protocol, **own}

    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    seen: set[str] = set()  # under the paper preset a grid's budget values give one trial (table 9's budget)
    for combo in combos:
        budget_combo = {key.removeprefix("budget."): value for key, value in combo.items() if key.startswith("budget.")}
        combo_budget = budget
        if budget_combo:  # a grid over budget fields (``budget.flops: [...]``): one trial per budget
            _check_keys(budget_combo, budget_fields, f"{where}.grid.budget")
            combo_budget = _budget(base_budget, {**budget_override, **budget_combo}, budget_scale, f"{where}.grid")
        combo = {key: value for key, value in combo.items() if not key.startswith("budget.")}
        typed = build_params(cls, nested(combo, into=nested(params)), f"{where}.params")
        declared_inputs(cls, typed)  # a method that declares what no report can name fails here, not in a trial
        # in a tuned suite a method with nothing to tune is tested on the final seeds, beside the finals it pairs with
        entry_seeds = list(tuning.final_seeds) if tuning is not None and search is None else seeds
        for dataset, task, seq_len, seed in itertools.product(datasets, entry_tasks, entry_lens, entry_seeds):
            get_task(task, f"{where}.tasks")
            if task not in cls.tasks:
                suite.skipped.append(f"{cls.name} does not do {task} (it does {', '.join(cls.tasks)})")
                continue
            if protocol.get("windows") == "prefixes":
                _check_prefixes(cls, typed, task, where)
            trial_params, trial_budget = typed, combo_budget
            if preset == "paper":
                trial_params = paper_pretraining(typed, dataset["name"], where)
                trial_budget = paper_budget(combo_budget, dataset["name"], task, where)
            spec = TrialSpec(suite.name, entry.get("label", cls.name), cls.name, params_json(trial_params),
                             DatasetRef(dataset["name"], dataset["path"], dataset["options"]), task, seq_len, seed,
                             Budget(**trial_budget), _protocol_for(task, protocol), tuple(suite.plugins), dtype,
                             kernels=kernels)
            if preset == "paper" and spec.trial_id in seen:
                suite.skipped.append(f"{spec.label}: the paper preset sets table 9's budget, so the grid's "
                                     f"budget values ({', '.join(budget_combo)}) are one trial")
                continue
            seen.add(spec.trial_id)
            if search is None:
                suite.trials.append(spec)
            else:
                metrics = get_task(task).metric_names(spec.protocol)
                if search.metric not in metrics:
                    raise _fail(f"{where}.search.metric", f"got {search.metric!r}; task {task} reports "
                                                           f"{', '.join(metrics)}")
                group = trial_hash({**spec.to_json(with_id=False), "search": search.identity()})
                sample = dataclasses.replace(spec, search_group=group, search_metric=search.metric,
                                             tested=not search.tuned)
                suite.searches.append((sample, search))


def _check_prefixes(cls: type, params: Any, task: str, where: str) -> None:
    """Training prefixes (``protocol.windows: prefixes``) only for next item and a method that reads them."""
    if task != "next_item":
        raise _fail(f"{where}.protocol.windows", f"prefixes are for next_item; task {task} labels a window of "
                                                 "exactly N events")
    if "prefixes" not in cls.window_kinds(params):
        raise _fail(f"{where}.protocol.windows", f"{cls.name} trains on windows of exactly N events only "
                                                 f"(it declares {', '.join(cls.window_kinds(params))})")


def check_histories(suite: Suite) -> dict[str, dict[str, int]]:
    """Before any trial starts: every history length of the suite leaves training examples on its dataset
    (a training window needs N inputs, its label, and the validation and test events after it). Returns
    the rows each dataset's loader repaired or dropped, by dataset (only datasets with some)."""
    from bench.data import load_dataset

    lengths: dict[tuple[str, str | None, str], set[int]] = {}
    for spec in suite.trials + [spec for spec, _ in suite.searches]:
        dataset = spec.dataset
        key = (dataset.name, dataset.path, json.dumps(dict(dataset.options), sort_keys=True))
        lengths.setdefault(key, set()).add(spec.seq_len)
    notes: dict[str, dict[str, int]] = {}
    for (name, path, options), seq_lens in lengths.items():
        dataset = load_dataset(name, path, **json.loads(options))
        handled = {what: count for what, count in dataset.notes.items() if count}
        if handled:
            notes[name + (f" {options}" if options != "{}" else "")] = handled
        longest = int(np.diff(dataset.user_ptr).max(initial=0))
        too_long = sorted(n for n in seq_lens if n + 3 > longest)
        if too_long and longest < 4:
            raise ConfigError(f"{suite.path}: dataset {name} has no user with the 4 events a training example "
                              f"needs at N=1 (an input, the label, then the validation and test events); its "
                              f"longest history has {longest} event(s); expected a dataset with longer histories")
        if too_long:
            raise ConfigError(f"{suite.path}: seq_lens: N={too_long[0]} leaves no training example on {name}: its "
                              f"longest user history has {longest} events and a training window needs N + 3 "
                              f"(N inputs, the label, then the validation and test events); expected N <= {longest - 3}")
    return notes


def _tuning(raw: Any, seeds: list[int]) -> Tuning | None:
    """The suite's ``tune:`` (None without one): samples (8), metric (recall@10), an ASHA scheduler
    ``{grace, reduction}`` (none: every sample runs its whole budget) and the final seeds (the suite's
    seeds, each plus 1000: not a seed any sample trained on)."""
    if raw is None:
        return None
    _check_keys(raw, TUNE_KEYS, "tune")
    samples = raw.get("samples", 8)
    if isinstance(samples, bool) or samples < 1:
        raise _fail("tune.samples", f"got {samples}; expected an integer >= 1")
    scheduler = None
    if "scheduler" in raw:
        sched = _check_keys(raw["scheduler"], SCHEDULER_KEYS, "tune.scheduler")
        grace, reduction = sched.get("grace", 1), sched.get("reduction", 2)
        if grace < 1 or reduction < 2:
            raise _fail("tune.scheduler", f"got grace={grace}, reduction={reduction}; expected grace >= 1 (training "
                                          "examples) and reduction >= 2")
        scheduler = (grace, reduction)
    final = _ints(raw.get("final_seeds", [seed + 1000 for seed in seeds]), "tune.final_seeds", 0)
    if not final:
        raise _fail("tune.final_seeds", "empty; expected at least one seed to train the chosen configuration on")
    return Tuning(samples, raw.get("metric", "recall@10"), scheduler, tuple(final))


def _search_spec(raw: Any, cls: type, where: str, tuning: Tuning | None = None) -> SearchSpec | None:
    if raw is None:
        return None
    _check_keys(raw, SEARCH_KEYS, where)
    if tuning is not None and {"samples", "metric"} & set(raw):
        raise _fail(where, f"sets {', '.join(sorted({'samples', 'metric'} & set(raw)))}; in a tuned suite every "
                           "method gets the suite's tune.samples and tune.metric (one shared search budget)")
    if "space" not in raw or not raw["space"]:
        raise _fail(f"{where}.space", "missing; give at least one parameter distribution")
    budget_fields = {f.name for f in dataclasses.fields(Budget)}
    for key, dist in raw["space"].items():
        target = key.removeprefix(BUDGET_PREFIX)
        if not (has_param(cls.Params, key) or (key.startswith(BUDGET_PREFIX) and target in budget_fields)):
            raise _fail(f"{where}.space.{key}", f"not a parameter of {cls.name} ({', '.join(param_defaults(cls))}) "
                                                 "nor budget.<field>")
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise _fail(f"{where}.space.{key}", f"got {dist!r}; expected one of "
                                                 f"{{{', '.join(f'{d}: [...]' for d in DISTRIBUTIONS)}}}")
        (kind, args), = dist.items()
        arity = DISTRIBUTIONS[kind]
        if not isinstance(args, list) or (arity is not None and len(args) != arity) or not args:
            raise _fail(f"{where}.space.{key}.{kind}", f"got {args!r}; expected a list of {arity or 'one or more'} values")
    if tuning is not None:
        return SearchSpec(copy.deepcopy(raw["space"]), tuning.samples, tuning.metric, tuning.scheduler,
                          tuning.final_seeds)
    samples = raw.get("samples", 4)
    if samples < 1:
        raise _fail(f"{where}.samples", f"got {samples}; expected an integer >= 1")
    metric = raw.get("metric", "recall@10")
    return SearchSpec(space=copy.deepcopy(raw["space"]), samples=samples, metric=metric)
