"""A trial's whole configuration as one frozen, typed value: what the suite resolved, what the runner
ships to a Ray worker (as JSON), what a record keeps. ``to_json`` gives the same mapping a trial spec
always had, so ``trial_hash`` over it (the trial id) is unchanged and finished records are recognised."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bench.context import Budget
from bench.errors import ConfigError
from bench.registry import nested
from bench.tasks import Protocol

NOT_IN_ID = ("suite", "label", "plugins", "search_group", "search_metric", "trial_id")  # naming, not computing
# (``tested`` is in the id: a sample scored on validation only is not the trial that is also tested)


def trial_hash(spec: Mapping[str, Any]) -> str:
    """Stable content hash of a trial's resolved configuration (what it computes, not where it runs or
    how it is named); a timeout stops a hung trial but does not change what a finished one computed."""
    keep = {k: v for k, v in spec.items() if k not in NOT_IN_ID}
    if "budget" in keep:
        keep["budget"] = {k: v for k, v in keep["budget"].items() if k != "timeout"}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DatasetRef:
    """Which dataset a trial runs on: its name, the folder of its files (None: embedded), its options."""

    name: str
    path: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "options": dict(self.options)}

    def describe(self) -> str:
        options = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}[{options}]" if options else self.name


@dataclass(frozen=True)
class TrialSpec:
    """One trial: method and its resolved parameters, dataset, task, history length, seed, budget and
    protocol, with the names reports use (suite, label) and, for a searched trial, its search."""

    suite: str
    label: str
    method: str
    params: Mapping[str, Any]
    dataset: DatasetRef
    task: str
    seq_len: int
    seed: int
    budget: Budget
    protocol: Protocol
    plugins: tuple[str, ...] = ()
    dtype: str = "auto"
    search_group: str | None = None
    search_metric: str | None = None
    tested: bool = True  # False: a tuned suite's search sample, scored on validation only
    kernels: str = "native"  # bench.kernels: "reproducible" pins every CPU kernel to AVX2 and fp32

    @cached_property
    def trial_id(self) -> str:
        return trial_hash(self.to_json(with_id=False))

    def to_json(self, with_id: bool = True) -> dict[str, Any]:
        """The spec as the JSON mapping records keep (``dtype``, ``kernels`` and the search fields only where
        set)."""
        out = {"suite": self.suite, "plugins": list(self.plugins), "label": self.label, "method": self.method,
               "params": dict(self.params), "dataset": self.dataset.to_json(), "task": self.task,
               "seq_len": self.seq_len, "seed": self.seed, "budget": self.budget.to_dict(),
               "protocol": {k: list(v) if isinstance(v, tuple) else v for k, v in self.protocol.to_dict().items()}}
        if self.dtype != "auto":
            out["dtype"] = self.dtype
        if self.search_group is not None:
            out["search_group"], out["search_metric"] = self.search_group, self.search_metric
        if not self.tested:
            out["tested"] = False
        if self.kernels != "native":
            out["kernels"] = self.kernels
        if with_id:
            out["trial_id"] = self.trial_id
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str = "trial spec") -> TrialSpec:
        """A spec from its JSON mapping, checked once: each field present with its type, budget and
        protocol valid; a ConfigError naming ``where`` and the key otherwise."""
        types = {"suite": str, "label": str, "method": str, "params": dict, "dataset": dict, "task": str,
                 "seq_len": int, "seed": int, "budget": dict, "protocol": dict}
        for key, kind in types.items():
            if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool) and kind is int:
                raise ConfigError(f"{where}: {key}={raw.get(key)!r}; expected a {kind.__name__}")
        dataset = raw["dataset"]
        try:
            budget = Budget(**raw["budget"])
            protocol = Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw["protocol"].items()})
            ref = DatasetRef(dataset["name"], dataset.get("path"), dict(dataset.get("options") or {}))
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cls(raw["suite"], raw["label"], raw["method"], dict(raw["params"]), ref, raw["task"], raw["seq_len"],
                   raw["seed"], budget, protocol, tuple(raw.get("plugins") or ()), raw.get("dtype", "auto"),
                   raw.get("search_group"), raw.get("search_metric"), raw.get("tested", True) is not False,
                   raw.get("kernels", "native"))

    @classmethod
    def of(cls, spec: TrialSpec | Mapping[str, Any]) -> TrialSpec:
        """``spec`` as a TrialSpec (a mapping is read with ``from_json``)."""
        return spec if isinstance(spec, TrialSpec) else cls.from_json(spec)

    def with_budget(self, **changes: Any) -> TrialSpec:
        """This trial with some budget fields changed (a new trial id where they change what it computes)."""
        return dataclasses.replace(self, budget=dataclasses.replace(self.budget, **changes))

    def shortened(self, examples: int, steps: int | None = None) -> TrialSpec:
        """This trial cut down for a quick look (``bench profile``, ``bench check-leakage``): at most
        ``examples`` validation and test examples, and ``steps`` training steps where given."""
        budget = self.budget
        cap = {"max_valid_examples": min(budget.max_valid_examples or examples, examples),
               "max_test_examples": min(budget.max_test_examples or examples, examples)}
        return self.with_budget(**cap, **({"steps": steps} if steps else {}))

    def with_params(self, changes: Mapping[str, Any]) -> TrialSpec:
        """This trial with some method parameters changed (dotted keys set nested ones: ``encoder.layers``)."""
        return dataclasses.replace(self, params=nested(changes, into=self.params))

    def describe(self) -> str:
        """"LABEL dataset/task/N=.. seed=.." as run lines and errors name a trial."""
        return f"{self.label} {self.dataset.name}/{self.task}/N={self.seq_len} seed={self.seed}"
