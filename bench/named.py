"""A registry of named things of one kind (methods, metrics, tasks, datasets, paper layouts, figures):
registration that refuses a second thing under one name, lookup whose error names what exists and the
closest spelling, and the listing the CLI and ``bench list`` show."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from bench.errors import ConfigError

T = TypeVar("T")


class Registry(dict[Any, T], Generic[T]):
    """``name -> thing`` for one ``kind`` ("method", "task", ...); a dict, with ``add`` and ``lookup``."""

    def __init__(self, kind: str, items: Mapping[Any, T] | Iterable[tuple[Any, T]] = ()) -> None:
        super().__init__()
        self.kind = kind
        for name, item in items.items() if isinstance(items, Mapping) else items:
            self.add(name, item)

    def add(self, name: Any, item: T, same: Callable[[T, T], bool] = lambda old, new: old is new,
            origin: Callable[[T], str] = repr) -> T:
        """Register ``item`` as ``name``; registering it again is a no-op where ``same(old, new)``, else an
        error naming both by ``origin``."""
        if name in self and not same(self[name], item):
            raise ConfigError(f"{self.kind} name {name!r} is registered twice ({origin(self[name])}, {origin(item)})")
        self[name] = item
        return item

    def lookup(self, name: Any, where: str = "") -> T:
        """The thing called ``name``; else one error naming ``where``, the kinds that exist, and the closest
        spelling."""
        if name in self:
            return self[name]
        close = difflib.get_close_matches(str(name), [str(key) for key in self], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown {self.kind} {name!r}; expected one of {', '.join(self.names())}{hint}")

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return [str(key) for key in self]
