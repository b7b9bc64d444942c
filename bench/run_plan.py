"""What a run of a suite has left to do, read from the records its results folder holds: one pure
function of (suite, records), used before a run, between a search's rounds and after the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.spec import TrialSpec
from bench.suite import SearchSpec, Suite
from bench.tuning import final_specs, samples_done


@dataclass(frozen=True)
class Plan:
    pending: list[TrialSpec]  # grid trials without an ok record, or with a stale one that is not kept
    skipped: int  # grid trials whose ok record stands
    stale: set[str]  # grid trials whose ok record other sources made (``bench.provenance``)
    searches: list[tuple[TrialSpec, SearchSpec, int]]  # (search, its space, samples it still needs)
    finals: list[TrialSpec]  # tuned searches' final trials without an ok record

    @property
    def done(self) -> bool:
        return not (self.pending or self.searches or self.finals)

    def samples_left(self, group: str) -> int:
        """Samples the search ``group`` still needs (0 once it has them all)."""
        return next((left for spec, _, left in self.searches if spec.search_group == group), 0)


def plan(suite: Suite, records: list[dict[str, Any]], keep_stale: bool = False) -> Plan:
    """What is left of ``suite`` given its ``records`` (``bench.store.load_records``): grid trials with no
    ok record (or a stale one, unless ``keep_stale``), searches short of samples, and the final trials of
    tuned searches whose samples are all done."""
    ok = {r["trial_id"]: r for r in records if r["status"] == "ok"}
    stale = {spec.trial_id for spec in suite.trials if spec.trial_id in ok and _stale(ok[spec.trial_id], spec)}
    pending = [spec for spec in suite.trials
               if spec.trial_id not in ok or (spec.trial_id in stale and not keep_stale)]
    searches = []
    for spec, search in suite.searches:
        done = samples_done(records, spec.search_group, search.tuned)
        if done < search.target:
            searches.append((spec, search, search.target - done))
    finals = [spec for spec in final_specs(suite.searches, records) if spec.trial_id not in ok]
    return Plan(pending, len(suite.trials) - len(pending), stale, searches, finals)


def _stale(record: dict[str, Any], spec: TrialSpec) -> bool:
    """Whether a finished record was made by other sources than the ones here (``bench.provenance``)."""
    from bench.provenance import same_sources
    from bench.registry import get_method

    return not same_sources(record, get_method(spec.method))
