"""The method registry: one Method contract, built-ins registered by decorator, plugins by entry point
(group ``userllm_bench.methods``) or by a suite's ``plugins:`` list of importable modules.

The harness knows methods only through this module; methods know the harness only through
``TrialContext`` and ``Predictions``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.metadata
import traceback
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from bench.context import TrialContext
from bench.data.windows import Examples
from bench.errors import ConfigError
from bench.evaluation import Predictions
from bench.named import Registry

ENTRY_POINT_GROUP = "userllm_bench.methods"
BUILTIN_MODULES = (
    "baselines.popularity",
    "baselines.cooccurrence",
    "baselines.window_count",
    "baselines.latest_label",
    "baselines.dual_encoder",
    "baselines.text_prompt",
    "baselines.recbole_adapter",
    "userllm.encoder_alone",
    "userllm.method",
)


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A method without parameters."""


class Method(ABC):
    """A method under test. The harness calls ``fit`` once, then ``predict`` on validation and test
    examples, then ``accounting``; it computes every metric itself."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("next_item", "fav_category")
    Params: ClassVar[type] = NoParams
    uses_llm: ClassVar[bool] = False  # computes in the trial's dtype on a CPU too (bench.precision)
    reads: ClassVar[tuple[str, ...]] = ()  # what it reads of a user's events, from INPUTS (see ``inputs``)
    supervision: ClassVar[str] = "none"  # what it learns from: a SUPERVISION key (see ``targets``)
    # training windows it can learn from: "exact" (N events each), "prefixes" (up to N, right-padded with
    # ``Examples.padding`` marking the pads: a method that declares it reads the lengths); see ``window_kinds``
    windows: ClassVar[tuple[str, ...]] = ("exact",)

    def __init__(self, params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, ctx: TrialContext) -> None:
        """Train on ``ctx.train`` within ``ctx.budget`` (``bench.models.training.train`` runs the harness's
        validation checks). ``ctx.dataset`` hides every validation and test label event."""

    @abstractmethod
    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        """Scores, ranked ids or texts for ``examples``, in order, from the events in ``ctx.dataset`` (the
        view for these examples: everything before their labels)."""

    def accounting(self, ctx: TrialContext) -> dict[str, Any]:
        """Cost facts: params_total, params_trainable, llm_input_tokens (per example), train_steps, ..."""
        return {}

    @classmethod
    def inputs(cls, params: Any) -> tuple[str, ...]:
        """What the method reads with these parameters, from ``INPUTS`` (the class's ``reads`` unless a
        parameter changes it, e.g. ``features: ids``)."""
        return cls.reads

    @classmethod
    def targets(cls, params: Any) -> str:
        """What it learns from with these parameters: a key of ``SUPERVISION``."""
        return cls.supervision

    @classmethod
    def window_kinds(cls, params: Any) -> tuple[str, ...]:
        """The training windows (``protocol.windows``) it can learn from with these parameters."""
        return cls.windows


INPUTS = {"item ids": "each event's item id", "categories": "each event's item categories (genres)",
          "ratings": "each event's rating", "timestamps": "each event's time",
          "text": "item titles, categories and ratings written as text",
          "LLM prior": "what a pretrained LLM learned about the items before the trial (web text)"}
SUPERVISION = {"none": "no training (a rule or a count)", "labels": "the training labels' frequency",
               "user's labels": "each user's own training labels (remembered per user)",
               "last": "one target per training window (its label)",
               "all positions": "every next event of a training window (N targets a window)",
               "masked positions": "masked events of the window and its label (Cloze)",
               "label text": "the label written as text, token by token",
               "label text, pretrained encoder": "the label as text; the user encoder first pretrained on every next "
                                                 "event of the training windows"}


def params_json(params: Any) -> dict[str, Any]:
    """``dataclasses.asdict(params)`` as a trial spec keeps it, without the fields marked
    ``metadata={"omit_at_default": True}`` that hold their default: a parameter added later leaves the
    trial ids of every configuration that does not set it as they were."""
    out = {}
    for spec in dataclasses.fields(params):
        value = getattr(params, spec.name)
        if spec.metadata.get("omit_at_default") and value == spec.default:
            continue
        out[spec.name] = params_json(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)
    return out


def declared_inputs(cls: type[Method], params: Any) -> dict[str, Any]:
    """What a method reads and learns from with ``params``, checked against ``INPUTS`` and
    ``SUPERVISION`` (a ConfigError naming the method otherwise)."""
    reads, targets = tuple(cls.inputs(params)), cls.targets(params)
    unknown = [name for name in reads if name not in INPUTS]
    if unknown or targets not in SUPERVISION:
        raise ConfigError(f"method {cls.name!r} declares inputs {list(reads)} and supervision {targets!r}; "
                          f"expected inputs from {sorted(INPUTS)} and supervision one of {sorted(SUPERVISION)}")
    return {"reads": list(reads), "supervision": targets}


METHODS: Registry[type[Method]] = Registry("method")
_loaded_sources: set[str] = set()


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a Method available under ``name`` to suites and ``bench list``."""

    def decorate(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) needs a subclass of bench.registry.Method")
        if not dataclasses.is_dataclass(cls.Params):
            raise ConfigError(f"method {name!r}: {cls.__module__}.{cls.__name__}.Params is "
                              f"{cls.Params!r}; expected a dataclass (@dataclasses.dataclass(frozen=True))")
        cls.name = name  # a module imported again registers its class again: the same method
        return METHODS.add(name, cls, same=lambda old, new: old.__qualname__ == new.__qualname__,
                           origin=lambda method: method.__module__)

    return decorate


def _failure(exc: BaseException) -> str:
    """An import failure as one line: the exception and where it was raised."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def import_plugin(module: str, where: str = "plugins") -> None:
    """Import a module that registers methods; any failure (no such module, a missing dependency, an
    exception or a syntax error in it, a bad ``Params``) is one ConfigError naming the module."""
    if module in _loaded_sources:
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise ConfigError(f"{where}: cannot import plugin module {module!r}: no such module") from None
        raise ConfigError(f"{where}: plugin module {module!r} needs {exc.name!r}, which is not installed "
                          f"({_failure(exc)})") from None
    except ConfigError as exc:  # it registered a method the registry refuses
        raise ConfigError(f"{where}: plugin module {module!r}: {exc}") from None
    except Exception as exc:  # the plugin's own code failed while importing
        raise ConfigError(f"{where}: plugin module {module!r} failed to import: {_failure(exc)}") from None
    _loaded_sources.add(module)


def _load_entry_point(entry: importlib.metadata.EntryPoint) -> None:
    """Register the Method class an installed package names in the ``userllm_bench.methods`` group."""
    where = f"entry point {entry.name} = {entry.value} (group {ENTRY_POINT_GROUP}, package " \
            f"{entry.dist.name if entry.dist else '?'})"
    try:
        loaded = entry.load()
    except Exception as exc:  # a missing dependency, an exception or a syntax error in the plugin
        raise ConfigError(f"{where}: failed to import: {_failure(exc)}") from None
    if not (isinstance(loaded, type) and issubclass(loaded, Method)):
        raise ConfigError(f"{where}: names {loaded!r}; expected a subclass of bench.registry.Method")
    if entry.name not in METHODS:
        register_method(entry.name)(loaded)


def load_methods(plugins: tuple[str, ...] = ()) -> Registry[type[Method]]:
    """Register built-ins, installed entry points and the given plugin modules; return the registry."""
    for module in BUILTIN_MODULES:
        import_plugin(module, "built-in methods")
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if f"ep:{entry.value}" not in _loaded_sources:
            _load_entry_point(entry)
            _loaded_sources.add(f"ep:{entry.value}")
    for module in plugins:
        import_plugin(module)
    return METHODS


def get_method(name: str, where: str = "method") -> type[Method]:
    """The registered method called ``name`` (built-ins and plugins load first: ``load_methods``)."""
    return METHODS.lookup(name, where)


def param_defaults(cls: type[Method]) -> dict[str, Any]:
    """Each parameter's default by its spelling in a suite (nested ones dotted, ``encoder.layers``; a
    required parameter shows as '<required>')."""
    return _defaults(cls.Params)


def _defaults(params: type, prefix: str = "") -> dict[str, Any]:
    out = {}
    for field in dataclasses.fields(params):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            value = "<required>"
        if dataclasses.is_dataclass(value):
            out |= _defaults(type(value), f"{prefix}{field.name}.")
        else:
            out[f"{prefix}{field.name}"] = value
    return out


def nested(flat: Mapping[str, Any], into: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``into`` updated with ``flat``, where a dotted key sets a nested parameter (``{"encoder.layers": 2}``
    is ``{"encoder": {"layers": 2}}``) and a mapping updates the mapping it replaces, key by key."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (into or {}).items()}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if rest:
            value = {rest: value}
        if isinstance(value, Mapping) and isinstance(out.get(head), Mapping):
            out[head] = nested(value, out[head])
        else:
            out[head] = nested(value) if isinstance(value, Mapping) else value
    return out


def has_param(params: type, path: str) -> bool:
    """Whether the dotted ``path`` names a parameter of the ``params`` dataclass (or one nested in it)."""
    head, _, rest = path.partition(".")
    hints = typing.get_type_hints(params)
    if head not in hints:
        return False
    return not rest or (dataclasses.is_dataclass(hints[head]) and has_param(hints[head], rest))


def build_params(cls: type[Method], given: Mapping[str, Any], where: str) -> Any:
    """Typed, validated Params for ``cls`` from a mapping (dotted keys set nested parameters); errors
    name ``where`` and the key, and a renamed parameter its new spelling."""
    return build_dataclass(cls.Params, nested(given), where, f"method {cls.name}")


def build_dataclass(kind: type, given: Mapping[str, Any], where: str, owner: str) -> Any:
    """The dataclass ``kind`` from ``given``, each value coerced to its field's type (nested dataclasses
    from mappings); unknown keys, renamed keys and invalid values are ConfigErrors naming ``where``."""
    hints = typing.get_type_hints(kind)
    renamed = getattr(kind, "renamed", {})
    values = {}
    for key, value in given.items():
        if key in renamed:
            new = renamed[key]
            outer, _, inner = new.partition(".")
            raise ConfigError(f"{where}.{key}: renamed; write {new}: {value!r} (or {outer}: {{{inner}: {value!r}}})")
        if key not in hints:
            expected = ", ".join(f.name for f in dataclasses.fields(kind)) or "none"
            raise ConfigError(f"{where}.{key}: unknown parameter of {owner}; expected one of: {expected}")
        values[key] = coerce(value, hints[key], f"{where}.{key}")
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _not_a_mapping(value: Any, kind: type, where: str) -> ConfigError:
    """The error for a plain value where parameters nest: it names the field that takes such a value."""
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(kind)]
    message = f"{where}: got {value!r}; expected a mapping of {', '.join(names)}"
    takes = [name for name in names if typing.get_origin(hints[name]) is Literal and value in typing.get_args(hints[name])]
    if takes:
        outer = where.rsplit(".", 1)[-1]
        message += f"; {value!r} is a value of {outer}.{takes[0]}: write {outer}: {{{takes[0]}: {value}}}"
    return ConfigError(message)


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` (int, float, bool, str, Literal, Optional, list/tuple of those, or a
    dataclass built from a mapping);
    a ConfigError naming ``where`` when it is not one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: got {value!r}; expected {_describe(hint)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: got {value!r}; expected one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: got {value!r}; expected a list")
        item = args[0] if args else Any
        return origin(coerce(v, item, where) for v in value)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise _not_a_mapping(value, hint, where)
        return build_dataclass(hint, value, where, hint.__name__)
    if hint is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:  # PyYAML reads 1e-3 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (bool, str) and isinstance(value, hint):
        return value
    raise ConfigError(f"{where}: got {value!r} ({type(value).__name__}); expected {_describe(hint)}")


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
