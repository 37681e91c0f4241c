"""The resolved configuration of a search, from command-line flags or a YAML file.

A :class:`SearchConfig` is composed of one configuration per component, each declared beside
the code it configures: the space (:class:`SpaceConfig`), the strategy
(:class:`~nas.search.strategy.StrategyConfig`), the evaluator
(:class:`~evaluators.scorers.EvaluatorConfig`), the latency table (:class:`LatencyConfig`), the
objective (:class:`~nas.search.objectives.ObjectiveConfig`), the output (:class:`OutputConfig`),
the executor (:class:`~nas.search.executors.ExecutorConfig`) and a differentiable strategy's
supernet training (:class:`~nas.search.dnas_settings.DNASConfig`). Every field is declared once
(:func:`nas.settings.setting`) with its flat key, type, default, help, range and whether it may
change when a run is resumed; that one declaration serves the component's own checks, the
``nas search`` flags (grouped by component in ``--help``), the YAML validator (flat keys, or
sections by component), the resume check (:meth:`SearchConfig.identity`) and the
``config.json`` written to the run directory. An unknown key, a value of the wrong type, an
out-of-range value or a missing latency-table file is a ``ValueError`` naming the key. The rules
between components are checked here.

Keys left unset resolve to what the other keys and the shipped data imply
(``SearchConfig._resolve_defaults``), so ``nas search`` with no flags runs a meaningful search: a
Pareto search (NSGA-II) of ``mobile``@32 ranked by the shipped CIFAR-10 accuracy predictor, latency
from the shipped CPU table. The resolved values are the ones stored and compared on resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import latency_tables
from evaluators.predictor import Predictor, resolve_predictor, shipped_predictors
from evaluators.scorers import EvaluatorConfig, scorer_names
from nas.io import read_text_file
from nas.search.dnas_settings import DNASConfig, DNASSettings
from nas.search.executors import ExecutorConfig
from nas.search.objectives import ObjectiveConfig
from nas.search.strategies import is_multi_objective, strategy_names
from nas.search.strategy import StrategyConfig
from nas.settings import Component, Key, setting

DNAS_STRATEGIES = ("fbnet", "proxyless")
"""Differentiable strategies (:mod:`nas.search.dnas`): they train a supernet in their own loop
instead of proposing candidates one by one."""
STRATEGIES = (*strategy_names(), *DNAS_STRATEGIES)


@dataclass(frozen=True)
class SpaceConfig(Component):
    """What a search explores: a registered space (``nas space list``) at an input size."""

    title: ClassVar[str] = "what is searched"

    name: str = setting("mobile", "search space (see `nas space list`)", key="space")
    resolution: int | None = setting(None, "input size (default: the latency table's)", range=(1, True, 4096))


@dataclass(frozen=True)
class LatencyConfig(Component):
    """How fast a candidate is: the per-op latency table that predicts it."""

    title: ClassVar[str] = "how fast a candidate is"

    table: str | None = setting(
        None,
        "latency table file or shipped name (`nas latency list`) (default: the shipped CPU table of "
        "--space, SPACE_RESOLUTION_cpu, when there is one)", key="latency_table")
    measure_missing: bool = setting(
        False, "measure ops missing from the latency table on this device instead of failing", volatile=True)


@dataclass(frozen=True)
class OutputConfig(Component):
    """Where a search's results go (every field may change when the run resumes)."""

    title: ClassVar[str] = "where results go"

    out: str | None = setting(
        None,
        "run directory (re-run the same command to resume) (default: "
        "runs/SPACE-STRATEGY-EVALUATOR-DIGEST, the digest of the settings that define the search: the "
        "same command resumes its run, other settings start their own)", volatile=True)
    storage: str | None = setting(None, "Optuna storage URL (default: sqlite:///OUT/study.db)", volatile=True)
    top_k: int = setting(5, "number of new candidates written to OUT/top/", volatile=True, range=(1, True, math.inf))


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search run, composed of one configuration per component (see
    ``nas search --help`` for each key). Build it from flat keys with :meth:`of` or
    :meth:`from_mapping`; the components are frozen, and construction resolves every key left
    unset (:meth:`_resolve_defaults`) and checks the rules between components."""

    space: SpaceConfig = field(default_factory=SpaceConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    dnas: DNASConfig = field(default_factory=DNASConfig)

    def __post_init__(self) -> None:
        for group, component in _COMPONENT_TYPES.items():
            if not isinstance(getattr(self, group), component):
                raise ValueError(f"{group}: expected a {component.__name__}, got {type(getattr(self, group)).__name__}")
        self._resolve_defaults()
        _one_of("strategy", self.strategy.name, STRATEGIES)
        _one_of("evaluator", self.evaluator.name, scorer_names())  # as registered: evaluators.scorers
        if (self.objective.kind == "pareto" and self.strategy.name not in DNAS_STRATEGIES
                and not is_multi_objective(self.strategy.name)):  # type: ignore[arg-type]
            raise ValueError(f"strategy {self.strategy.name!r} optimises one value; use objective 'reward', or "
                             "strategy 'nsga2' or 'random' for a Pareto search")
        _check_device(self)
        _check_table(self.latency.table)
        _check_storage(self.output.storage)
        self._check_evaluator()
        if self.strategy.name in DNAS_STRATEGIES:
            self.dnas_settings()  # the dnas_* keys with the run's device, batch and limits
            if self.executor.kind != "inprocess":
                raise ValueError(f"strategy {self.strategy.name!r} trains a supernet in-process; executor must be "
                                 f"'inprocess', got {self.executor.kind!r}")
        else:
            for key, value in self.dnas.key_values().items():
                if value != KEYS[key].default:
                    raise ValueError(f"{key}: only meaningful with strategy {' or '.join(DNAS_STRATEGIES)} "
                                     f"(strategy is {self.strategy.name!r})")

    def _check_evaluator(self) -> None:
        """The rules between the evaluator's keys and the other components'."""
        ev = self.evaluator
        if ev.data == "none" and (not ev.data_free or self.strategy.name in DNAS_STRATEGIES):
            raise ValueError("data: 'none' works only with a data-free evaluator (evaluator predictor, or evaluator "
                             "proxy with proxy synflow) and an ask/tell strategy")
        if ev.name == "predictor" and ev.predictor is None:
            at = "" if self.space.resolution is None else f" at {self.space.resolution} px"
            raise ValueError(f"predictor: give a predictor file for evaluator 'predictor': no shipped predictor covers "
                             f"space {self.space.name!r}{at} (`nas predictor list`; fit one with `nas predictor fit`)")
        if ev.name != "predictor" and ev.predictor is not None:
            raise ValueError("predictor: give a predictor file only with evaluator 'predictor' "
                             f"(evaluator {ev.name!r}, predictor {ev.predictor!r})")
        if (ev.name == "supernet") != (ev.supernet is not None):
            raise ValueError("supernet: give a `nas supernet train` directory exactly when evaluator is 'supernet' "
                             f"(evaluator {ev.name!r}, supernet {ev.supernet!r})")
        if ev.predictor is not None:
            resolve_predictor(ev.predictor)

    def _resolve_defaults(self) -> None:
        """Give every key left unset (``None``) the value the other keys and the shipped data
        imply, each rule in one place (see each key's ``--help``):

        - ``latency_table``: the one shipped table ``<space>_<resolution>_cpu`` (any resolution when
          ``resolution`` is unset);
        - ``evaluator``: the one ``supernet``, ``predictor`` or ``proxy`` implies; without them and
          without ``data``, ``predictor`` when a shipped predictor covers the space, else ``proxy``;
          ``predictor`` (with that evaluator): that shipped predictor; ``proxy``: ``naswot``;
        - ``data``: ``none`` for the predictor (it reads no images; a differentiable strategy
          trains a supernet, so not there), else ``synthetic``;
        - ``objective``: ``pareto`` when no latency target is set and the strategy (if set) can
          search a front, else ``reward``; ``strategy``: ``nsga2`` for a front, else ``evolution``;
        - ``out``: ``runs/<space>-<strategy>-<evaluator>-<digest of the settings>``, so the same
          command resumes its run and another one starts its own.

        (The configuration and its components are frozen: a resolved component replaces the
        given one, set with ``object.__setattr__``.)"""
        def put(key: str, value: Any) -> None:
            group = KEYS[key].group
            object.__setattr__(self, group, replace(getattr(self, group), **{KEYS[key].attr: value}))

        space, ev, strategy = self.space, self.evaluator, self.strategy
        tables = _shipped_cpu_tables(space.name)
        if self.latency.table is None:
            fits = [name for name, res in tables.items() if space.resolution in (None, res)]
            if len(fits) == 1:
                put("latency_table", fits[0])
        resolution = space.resolution or tables.get(str(self.latency.table))
        implied = ("supernet" if ev.supernet is not None else "predictor" if ev.predictor is not None
                   else "proxy" if ev.proxy is not None or ev.data is not None else None)
        wanted = ev.predictor is None and (ev.name == "predictor" or (ev.name is None and not implied))
        shipped = _shipped_predictor(space.name, resolution) if wanted else None
        if ev.name is None:
            put("evaluator", implied or ("predictor" if shipped else "proxy"))
        if self.evaluator.name == "predictor" and ev.predictor is None:
            put("predictor", shipped)
        if ev.proxy is None:
            put("proxy", "naswot")
        if ev.data is None:
            put("data", "none" if self.evaluator.name == "predictor" and strategy.name not in DNAS_STRATEGIES
                else "synthetic")
        if self.objective.kind is None:
            front = self.objective.target_ms is None and (
                strategy.name is None or (strategy.name in strategy_names() and is_multi_objective(strategy.name)))
            put("objective", "pareto" if front else "reward")
        if strategy.name is None:
            put("strategy", "nsga2" if self.objective.kind == "pareto" else "evolution")
        if self.output.out is None:
            digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
            put("out", str(Path("runs") / f"{space.name}-{self.strategy.name}-{self.evaluator.name}-{digest}"))

    @property
    def evaluation_device(self) -> str:
        """The torch device every evaluation (and a differentiable search's supernet) runs on:
        ``device``, else ``cuda`` when Ray tasks reserve GPUs (Ray makes a task's assigned GPUs the
        only visible ones, so ``cuda`` is the one it was given), else ``cpu``."""
        if self.evaluator.device is not None:
            return self.evaluator.device
        return "cuda" if self.executor.kind == "ray" and self.executor.num_gpus > 0 else "cpu"

    @property
    def run_dir(self) -> Path:
        return Path(self.output.out)  # type: ignore[arg-type]  (resolved)

    @property
    def storage_url(self) -> str:
        """Optuna storage: ``storage`` or a SQLite file in the run directory."""
        return self.output.storage or f"sqlite:///{(self.run_dir / 'study.db').resolve()}"

    @property
    def is_differentiable(self) -> bool:
        """Whether the strategy trains a supernet (fbnet, proxyless) rather than asking and telling."""
        return self.strategy.name in DNAS_STRATEGIES

    def to_dict(self) -> dict[str, Any]:
        """Every key's value by its flat name (the form stored in a run's ``config.json``, read
        back by :meth:`of`)."""
        return {name: getattr(getattr(self, key.group), key.attr) for name, key in KEYS.items()}

    def with_values(self, **values: Any) -> SearchConfig:
        """This configuration with the flat keys ``values`` changed (checked as any other)."""
        return SearchConfig.of(**{**self.to_dict(), **values})

    def dnas_settings(self) -> DNASSettings:
        """The supernet-training settings of a DNAS strategy (``ValueError`` naming the
        ``dnas_*`` key that is out of range, or for a strategy that is not differentiable)."""
        if not self.is_differentiable:
            raise ValueError(f"strategy {self.strategy.name!r} is not differentiable ({', '.join(DNAS_STRATEGIES)} are)")
        return self.dnas.settings(
            mode="soft" if self.strategy.name == "fbnet" else "single", device=self.evaluation_device,
            batch_size=self.evaluator.batch_size, seed=self.strategy.seed, threads=self.evaluator.threads,
            time_limit_s=self.strategy.time_limit_s)

    def identity(self) -> dict[str, Any]:
        """The settings that define *which* search this is: a resumed run must match them.
        (Budget, time limit, output paths, executor settings and, for a differentiable search, the
        number of epochs and the device may change between runs.)"""
        return {name: value for name, value in self.to_dict().items()
                if not KEYS[name].volatile and (self.is_differentiable or KEYS[name].group != "dnas")}

    @classmethod
    def of(cls, **values: Any) -> SearchConfig:
        """The configuration of the flat keys ``values`` (the others at their defaults);
        ``ValueError`` naming an unknown key or a refused value."""
        given: dict[str, dict[str, Any]] = {group: {} for group in _COMPONENT_TYPES}
        for name, value in values.items():
            if name not in KEYS:
                close = [k for k in KEYS if k.replace("_", "") == str(name).replace("_", "").replace("-", "")]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown key {name!r}{hint}; known keys: {', '.join(sorted(KEYS))}")
            given[KEYS[name].group][KEYS[name].attr] = value
        return cls(**{group: _COMPONENT_TYPES[group](**kwargs) for group, kwargs in given.items()})

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "config") -> SearchConfig:
        """Validate a mapping (a parsed YAML file) whose keys are flat (``workers: 4``) or grouped
        by component (``executor: {kind: ray, workers: 4}``: a component's section takes its
        fields' names or flat keys); errors name ``source`` and the key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
        flat: dict[str, Any] = {}
        for name, value in data.items():
            if name in _COMPONENT_TYPES and isinstance(value, dict):
                flat.update(_section(name, value, source))
            else:
                flat[name] = value
        try:
            return cls.of(**flat)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> SearchConfig:
        """Read and validate a YAML config file."""
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(read_text_file(p, "a YAML config file"))
        except RecursionError:
            raise ValueError(f"{p}: YAML nested too deeply to be a config") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: not valid YAML ({exc})") from None
        return cls.from_mapping(data if data is not None else {}, source=str(p))


_COMPONENT_TYPES: dict[str, type[Component]] = {
    f.name: f.default_factory for f in fields(SearchConfig)}  # type: ignore[misc]
KEYS: dict[str, Key] = {key.name: key for group, component in _COMPONENT_TYPES.items()
                        for key in component.keys(group)}
"""Every key of a search by its flat name (flag ``--latency-table``, YAML ``latency_table``): the
component holding it, its type, default, help, volatility and range."""


def component_titles() -> dict[str, str]:
    """Each component of a search (the attribute of :class:`SearchConfig` holding it) and its
    one-line title, in ``--help`` order."""
    return {group: component.title for group, component in _COMPONENT_TYPES.items()}


def _section(group: str, values: dict[str, Any], source: str) -> dict[str, Any]:
    """The flat keys of a YAML section ``group: {...}`` (field names or flat keys of that component)."""
    keys = {k.attr: k.name for k in _COMPONENT_TYPES[group].keys(group)}
    flat = {}
    for name, value in values.items():
        if name not in keys and name not in keys.values():
            raise ValueError(f"{source}: {group}: unknown key {name!r}; known: {', '.join(sorted(keys))}")
        flat[keys.get(name, name)] = value
    return flat


def _shipped_cpu_tables(space: str) -> dict[str, int]:
    """The shipped latency tables measured on a CPU for ``space`` (named ``<space>_<resolution>_cpu``)
    and their resolutions."""
    pattern = re.compile(rf"{re.escape(space)}_(\d+)_cpu")
    return {name: int(m[1]) for name in latency_tables.names() if (m := pattern.fullmatch(name))}


def _shipped_predictor(space: str, resolution: int | None) -> str | None:
    """The name of the one shipped accuracy predictor of ``space`` (at ``resolution``, when known);
    ``None`` when there is none or more than one."""
    fits = []
    for name in shipped_predictors():
        p = Predictor.load(name)
        if p.space == space and (resolution is None or p.resolution in (None, resolution)):
            fits.append(name)
    return fits[0] if len(fits) == 1 else None


def _check_table(table: str | None) -> None:
    if table is None:
        raise ValueError("latency_table: required (a table file, or a shipped name from `nas latency list`)")
    if not Path(table).is_file() and table not in latency_tables.names():
        shipped = ", ".join(latency_tables.names()) or "none"
        raise ValueError(f"latency_table: {table!r} is neither a file nor a shipped table (shipped: {shipped})")


def _check_storage(url: str | None) -> None:
    """A storage URL SQLAlchemy can parse, of a database kind it has a dialect for (whether the
    database is there is found when the run opens it)."""
    import sqlalchemy

    if url is None:
        return
    try:
        sqlalchemy.engine.make_url(url).get_dialect()
    except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
        raise ValueError(f"storage: {url!r} is not a database URL this installation can open ({exc}); "
                         "e.g. sqlite:///PATH/study.db") from None


def _check_device(config: SearchConfig) -> None:
    """The device's form, and its agreement with the GPUs Ray tasks reserve (whether it exists is
    checked where the evaluations run)."""
    device, executor = config.evaluation_device, config.executor
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device: expected cpu, cuda, cuda:N or mps, got {device!r}")
    if executor.kind == "ray" and executor.num_gpus > 0 and kind != "cuda":
        raise ValueError(f"num_gpus: {executor.num_gpus} GPUs reserved per evaluation, but device is {device!r}; "
                         "use device cuda (or num_gpus 0)")
    if executor.kind == "ray" and executor.num_gpus == 0 and kind == "cuda":
        raise ValueError("device: 'cuda' under executor ray needs num_gpus > 0 (a Ray task sees only the GPUs it "
                         "reserves)")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
