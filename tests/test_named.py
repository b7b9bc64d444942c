"""The one registry helper behind methods, metrics, tasks, datasets, paper tables and figures."""

from __future__ import annotations

import pytest

from bench.data import DATASETS
from bench.errors import ConfigError
from bench.metrics import METRICS
from bench.named import Registry
from bench.registry import METHODS, get_method, load_methods
from bench.report.figures import FIGURES
from bench.report.paper_tables import LAYOUTS
from bench.tasks import TASKS


def test_a_lookup_names_where_what_exists_and_the_closest_spelling():
    load_methods()
    with pytest.raises(ConfigError, match=r"^methods\[0\]\.method: unknown method 'dual_encodr'; expected one of "
                                          r".*\(did you mean 'dual_encoder'\?\)$"):
        get_method("dual_encodr", "methods[0].method")
    with pytest.raises(ConfigError, match=r"^unknown task 'xyzzy'; expected one of next_item, fav_category, "
                                          r"review_gen$"):
        TASKS.lookup("xyzzy")


def test_a_name_is_registered_once_unless_it_is_the_same_thing():
    colours = Registry("colour", {"red": 1})
    assert colours.add("red", 1) == 1 and colours.names() == ["red"]
    with pytest.raises(ConfigError, match="colour name 'red' is registered twice"):
        colours.add("red", 2)


@pytest.mark.parametrize("registry", [METHODS, METRICS, TASKS, DATASETS, LAYOUTS, FIGURES],
                         ids=["methods", "metrics", "tasks", "datasets", "layouts", "figures"])
def test_every_registry_is_one_kind(registry):
    load_methods()
    assert isinstance(registry, Registry) and registry.names()
