"""The resolved configuration of a search, from command-line flags or a YAML file.

Every key is declared once, as a field of :class:`SearchConfig` made with :func:`setting`: its
type, default, the component it configures (:data:`GROUPS`), its help text, its numeric range and
whether it may change when a run is resumed. That one declaration serves the YAML validator, the
``nas search`` flags (grouped by component in ``--help``), the resume check
(:meth:`SearchConfig.identity`) and the ``config.json`` written to the run directory. An
unknown key, a value of the wrong type, an out-of-range value or a missing latency-table file is a
``ValueError`` naming the key.

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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import latency_tables
from evaluators.predictor import Predictor, resolve_predictor, shipped_predictors
from evaluators.scorers import scorer_names
from nas.checks import is_int, is_real
from nas.io import read_text_file
from nas.search.dnas_settings import DNASSettings
from nas.search.strategies import is_multi_objective, strategy_names
from nas.search.strategy import StrategySettings

_DNAS = DNASSettings()  # the dnas_* defaults are the supernet settings' own

GROUPS: dict[str, str] = {
    "space": "what is searched",
    "strategy": "how candidates are proposed",
    "evaluator": "how good a candidate is",
    "latency": "how fast a candidate is",
    "objective": "what is optimised, under which limits",
    "output": "where results go",
    "executor": "where evaluations run",
    "dnas": "differentiable strategies (fbnet, proxyless): the supernet's training",
}
"""The components a search's keys configure, in ``--help`` order, with their titles."""


def setting(default: Any, group: str, help: str, *, volatile: bool = False,
            range: tuple[float, bool, float] | None = None) -> Any:
    """A :class:`SearchConfig` key: ``default``, the component it configures (a :data:`GROUPS` key),
    its ``--help`` text, whether it may change when a run resumes (``volatile``: a budget, paths,
    where evaluations run; anything else defines *which* search it is), and for a number its range
    ``(low, low allowed, high)`` (see :func:`check_range`)."""
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}")  # a programming error in this module
    return field(default=default, metadata={"group": group, "help": help, "volatile": volatile, "range": range})

DNAS_STRATEGIES = ("fbnet", "proxyless")
"""Differentiable strategies (:mod:`nas.search.dnas`): they train a supernet in their own loop
instead of proposing candidates one by one."""
STRATEGIES = (*strategy_names(), *DNAS_STRATEGIES)
OBJECTIVES = ("reward", "pareto")
EXECUTORS = ("inprocess", "ray")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search run (see ``nas search --help`` for each key)."""

    space: str = setting("mobile", "space", "search space (see `nas space list`)")
    resolution: int | None = setting(None, "space", "input size (default: the latency table's)", range=(1, True, 4096))
    strategy: str | None = setting(
        None, "strategy",
        "random | evolution | tpe | nsga2 (ask/tell) | fbnet | proxyless (differentiable, supernet) | "
        "nni-evolution | nni-random (NNI 3.0's, needs the litenas[nni] extra) (default: evolution for the"
        " reward objective, nsga2 for a Pareto front)")
    budget: int = setting(
        50, "strategy",
        "number of candidates to evaluate (ask/tell strategies; fbnet/proxyless judge 1 + --dnas-samples)",
        volatile=True, range=(1, True, math.inf))
    time_limit_s: float | None = setting(
        None, "strategy",
        "stop starting new evaluations after this many seconds",
        volatile=True, range=(0, False, math.inf))
    seed: int = setting(0, "strategy", "seed of the strategy and evaluators", range=(0, True, 2**32 - 1))
    out: str | None = setting(
        None, "output",
        "run directory (re-run the same command to resume) (default: "
        "runs/SPACE-STRATEGY-EVALUATOR-DIGEST, the digest of the settings that define the search: the "
        "same command resumes its run, other settings start their own)",
        volatile=True)
    storage: str | None = setting(None, "output", "Optuna storage URL (default: sqlite:///OUT/study.db)", volatile=True)
    latency_table: str | None = setting(
        None, "latency",
        "latency table file or shipped name (`nas latency list`) (default: the shipped CPU table of "
        "--space, SPACE_RESOLUTION_cpu, when there is one)")
    measure_missing: bool = setting(
        False, "latency",
        "measure ops missing from the latency table on this device instead of failing",
        volatile=True)
    evaluator: str | None = setting(
        None, "evaluator",
        "proxy (zero-cost, seconds) | train (short training) | predictor (an accuracy predictor fitted on"
        " trained networks, milliseconds; see `nas predictor`) | supernet (inherited weights of a trained"
        " supernet; see `nas supernet`) (default: the one --predictor, --supernet or --proxy/--data "
        "imply; with none of them, predictor when a shipped predictor covers --space, else proxy)")
    proxy: str | None = setting(
        None, "evaluator",
        "zero-cost proxy for --evaluator proxy: naswot | synflow | grad_norm | snip (default: naswot)")
    predictor: str | None = setting(
        None, "evaluator",
        "accuracy predictor for --evaluator predictor: a file (`nas predictor fit`) or a shipped name "
        "(`nas predictor list`) (default: the shipped predictor of --space at --resolution)")
    supernet: str | None = setting(
        None, "evaluator",
        "`nas supernet train` directory for --evaluator supernet: candidates are scored by inherited "
        "weights after BatchNorm re-calibration, and the search runs over the supernet's part of the "
        "space")
    data: str | None = setting(
        None, "evaluator",
        "'none' (data-free proxies: synflow), 'synthetic' (random images: smoke tests only), or a dataset"
        " path (image folders, .tar.gz, CIFAR pickles, Fashion-MNIST) (default: none with --evaluator "
        "predictor, which reads no images, else synthetic)")
    train_epochs: int = setting(
        1, "evaluator",
        "epochs per candidate with --evaluator train",
        range=(1, True, math.inf))
    train_per_class: int | None = setting(
        500, "evaluator",
        "training images per class taken from the dataset (after the held-out split)",
        range=(1, True, math.inf))
    test_per_class: int | None = setting(
        None, "evaluator",
        "images per class split off the training set to rank candidates (the test set is never used by a "
        "search; with --evaluator supernet, drawn from the images it held out) (default: a tenth of the "
        "smallest class)",
        range=(1, True, math.inf))
    batch_size: int = setting(
        64, "evaluator",
        "minibatch size (proxy batch, training batch)",
        range=(1, True, math.inf))
    objective: str | None = setting(
        None, "objective",
        "reward (MnasNet ACC*(LAT/T)^w) | pareto (metric vs latency) (default: reward with a latency "
        "target, --max-latency-ms or --target-latency-ms; pareto without one)")
    max_latency_ms: float | None = setting(
        None, "objective",
        "hard limit on predicted latency; also the reward target unless --target-latency-ms",
        range=(0, False, math.inf))
    target_latency_ms: float | None = setting(
        None, "objective",
        "the reward's latency target T",
        range=(0, False, math.inf))
    reward_w: float = setting(
        -0.07, "objective",
        "the reward exponent w (soft constraint, MnasNet: -0.07)",
        range=(-math.inf, True, math.inf))
    hard_reward: bool = setting(False, "objective", "use the reward's hard form (alpha=0, beta=-1)")
    max_params: int | None = setting(None, "objective", "hard limit on parameters", range=(1, True, math.inf))
    max_macs: int | None = setting(None, "objective", "hard limit on conv+linear MACs", range=(1, True, math.inf))
    population: int = setting(20, "strategy", "population size (evolution, nsga2)", range=(1, True, math.inf))
    sample_size: int = setting(5, "strategy", "tournament size (evolution)", range=(1, True, math.inf))
    start_from: str | None = setting(
        None, "strategy",
        "warm start: comma-separated zoo names or architecture files (JSON or string form), points of the"
        " space, that the search evaluates first; evolution then mutates the best of them (e.g. the fixed"
        " point a search should beat)")
    top_k: int = setting(
        5, "output",
        "number of new candidates written to OUT/top/",
        volatile=True, range=(1, True, math.inf))
    threads: int | None = setting(
        1, "evaluator",
        "torch CPU threads per evaluation",
        volatile=True, range=(1, True, math.inf))
    executor: str = setting("inprocess", "executor", "inprocess | ray", volatile=True)
    ray_address: str | None = setting(
        None, "executor",
        "Ray cluster address (auto | HOST:PORT); none starts a local instance",
        volatile=True)
    workers: int = setting(
        1, "executor",
        "concurrent evaluations (ray executor)",
        volatile=True, range=(1, True, math.inf))
    num_cpus: float = setting(
        1.0, "executor",
        "CPUs per evaluation (ray executor)",
        volatile=True, range=(0, True, math.inf))
    num_gpus: float = setting(
        0.0, "executor",
        "GPUs per evaluation (ray executor)",
        volatile=True, range=(0, True, math.inf))
    device: str | None = setting(
        None, "evaluator",
        "torch device of every evaluation and of a fbnet/proxyless supernet: cpu | cuda | cuda:N | mps "
        "(default: cuda when --num-gpus > 0 under --executor ray, else cpu)",
        volatile=True)
    eval_timeout_s: float | None = setting(
        None, "executor",
        "a candidate running longer fails (ray executor)",
        volatile=True, range=(0, False, math.inf))
    max_retries: int = setting(
        2, "executor",
        "re-submissions of an evaluation whose worker died (ray executor)",
        volatile=True, range=(0, True, math.inf))
    dnas_epochs: int = setting(
        _DNAS.epochs, "dnas",
        "supernet training epochs, warm-up included (fbnet, proxyless); raise it and re-run to train on",
        volatile=True)
    dnas_warmup_epochs: int = setting(
        _DNAS.warmup_epochs, "dnas",
        "first epochs that train the supernet weights only (fbnet, proxyless)")
    dnas_loss: str = setting(
        _DNAS.loss, "dnas",
        "relative (CE + alpha*(LAT/LAT_ref)^beta, LAT_ref the space's mean latency: any latency scale) | "
        "mult (FBNet: CE*alpha*log(LAT)^beta, every LAT > 1 ms) | add (CE + alpha*LAT^beta); LAT in ms "
        "(fbnet, proxyless)")
    dnas_alpha: float = setting(
        _DNAS.alpha, "dnas",
        "weight of the latency term (relative: nats of CE per space-mean latency) (fbnet, proxyless)")
    dnas_beta: float = setting(
        _DNAS.beta, "dnas",
        "exponent of the latency term (FBNet's mult: 0.6) (fbnet, proxyless)")
    dnas_temperature: float = setting(
        _DNAS.temperature, "dnas",
        "Gumbel-softmax temperature of the first epoch (FBNet: 5.0) (fbnet, proxyless)")
    dnas_temperature_decay: float = setting(
        _DNAS.temperature_decay, "dnas",
        "temperature factor per epoch (FBNet: 0.956) (fbnet, proxyless)")
    dnas_weight_lr: float = setting(
        _DNAS.weight_lr, "dnas",
        "peak SGD learning rate of the supernet weights, cosine decay (fbnet, proxyless)")
    dnas_arch_lr: float = setting(
        _DNAS.arch_lr, "dnas",
        "Adam learning rate of the architecture parameters (FBNet: 0.01) (fbnet, proxyless)")
    dnas_arch_split: float = setting(
        _DNAS.arch_split, "dnas",
        "fraction of the training images that train the architecture parameters (fbnet, proxyless)")
    dnas_samples: int = setting(
        _DNAS.samples, "dnas",
        "architectures sampled from the learned distribution besides the argmax (FBNet: 6)")

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        self._resolve_defaults()
        _one_of("strategy", self.strategy, STRATEGIES)
        _one_of("evaluator", self.evaluator, scorer_names())  # as registered: evaluators.scorers
        _one_of("objective", self.objective, OBJECTIVES)
        _one_of("executor", self.executor, EXECUTORS)
        for name in RANGES:
            value = getattr(self, name)
            if value is not None:
                check_range(name, value)
        if self.sample_size > self.population:
            raise ValueError(f"sample_size ({self.sample_size}) cannot exceed population ({self.population})")
        _check_device(self)
        if self.objective == "reward" and self.reward_target_ms is None:
            raise ValueError("objective 'reward' needs a latency target: set target_latency_ms or max_latency_ms")
        if (self.objective == "pareto" and self.strategy not in DNAS_STRATEGIES
                and not is_multi_objective(self.strategy)):
            raise ValueError(f"strategy {self.strategy!r} optimises one value; use objective 'reward', or "
                             "strategy 'nsga2' or 'random' for a Pareto search")
        _check_table(self.latency_table)
        _check_storage(self.storage)
        if self.executor == "inprocess" and self.workers != 1:
            raise ValueError("workers > 1 needs executor 'ray'")
        data_free = self.evaluator == "predictor" or (self.evaluator == "proxy" and self.proxy == "synflow")
        if self.data == "none" and (not data_free or self.strategy in DNAS_STRATEGIES):
            raise ValueError("data: 'none' works only with a data-free evaluator (evaluator predictor, or evaluator "
                             "proxy with proxy synflow) and an ask/tell strategy")
        if self.evaluator == "predictor" and self.predictor is None:
            at = "" if self.resolution is None else f" at {self.resolution} px"
            raise ValueError(f"predictor: give a predictor file for evaluator 'predictor': no shipped predictor covers "
                             f"space {self.space!r}{at} (`nas predictor list`; fit one with `nas predictor fit`)")
        if self.evaluator != "predictor" and self.predictor is not None:
            raise ValueError("predictor: give a predictor file only with evaluator 'predictor' "
                             f"(evaluator {self.evaluator!r}, predictor {self.predictor!r})")
        if (self.evaluator == "supernet") != (self.supernet is not None):
            raise ValueError("supernet: give a `nas supernet train` directory exactly when evaluator is 'supernet' "
                             f"(evaluator {self.evaluator!r}, supernet {self.supernet!r})")
        if self.predictor is not None:
            resolve_predictor(self.predictor)
        if self.strategy in DNAS_STRATEGIES:
            self.dnas_settings()  # validates every dnas_* key
            if self.executor != "inprocess":
                raise ValueError(f"strategy {self.strategy!r} trains a supernet in-process; executor must be "
                                 f"'inprocess', got {self.executor!r}")
        else:
            for f in fields(self):
                if f.name.startswith("dnas_") and getattr(self, f.name) != f.default:
                    raise ValueError(f"{f.name}: only meaningful with strategy {' or '.join(DNAS_STRATEGIES)} "
                                     f"(strategy is {self.strategy!r})")

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

        (A frozen dataclass: the resolved values are set with ``object.__setattr__``.)"""
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        tables = _shipped_cpu_tables(self.space)
        if self.latency_table is None:
            fits = [name for name, res in tables.items() if self.resolution in (None, res)]
            if len(fits) == 1:
                put("latency_table", fits[0])
        resolution = self.resolution or tables.get(str(self.latency_table))
        implied = ("supernet" if self.supernet is not None else "predictor" if self.predictor is not None
                   else "proxy" if self.proxy is not None or self.data is not None else None)
        wanted = self.predictor is None and (self.evaluator == "predictor" or (self.evaluator is None and not implied))
        shipped = _shipped_predictor(self.space, resolution) if wanted else None
        if self.evaluator is None:
            put("evaluator", implied or ("predictor" if shipped else "proxy"))
        if self.evaluator == "predictor" and self.predictor is None:
            put("predictor", shipped)
        if self.proxy is None:
            put("proxy", "naswot")
        if self.data is None:
            put("data", "none" if self.evaluator == "predictor" and self.strategy not in DNAS_STRATEGIES
                else "synthetic")
        if self.objective is None:
            front = self.reward_target_ms is None and (
                self.strategy is None or (self.strategy in strategy_names() and is_multi_objective(self.strategy)))
            put("objective", "pareto" if front else "reward")
        if self.strategy is None:
            put("strategy", "nsga2" if self.objective == "pareto" else "evolution")
        if self.out is None:
            digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
            put("out", str(Path("runs") / f"{self.space}-{self.strategy}-{self.evaluator}-{digest}"))

    @property
    def reward_target_ms(self) -> float | None:
        """The reward's latency target: ``target_latency_ms``, else ``max_latency_ms``."""
        return self.target_latency_ms if self.target_latency_ms is not None else self.max_latency_ms

    @property
    def evaluation_device(self) -> str:
        """The torch device every evaluation (and a differentiable search's supernet) runs on:
        ``device``, else ``cuda`` when Ray tasks reserve GPUs (Ray makes a task's assigned GPUs the
        only visible ones, so ``cuda`` is the one it was given), else ``cpu``."""
        if self.device is not None:
            return self.device
        return "cuda" if self.executor == "ray" and self.num_gpus > 0 else "cpu"

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    @property
    def storage_url(self) -> str:
        """Optuna storage: ``storage`` or a SQLite file in the run directory."""
        return self.storage or f"sqlite:///{(self.run_dir / 'study.db').resolve()}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def strategy_settings(self) -> StrategySettings:
        """What the ask/tell strategy reads of this configuration."""
        return StrategySettings(seed=self.seed, population=self.population, sample_size=self.sample_size)

    def dnas_settings(self) -> DNASSettings:
        """The supernet-training settings of a DNAS strategy (``ValueError`` naming the
        ``dnas_*`` key that is out of range, or for a strategy that is not differentiable)."""
        if self.strategy not in DNAS_STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not differentiable ({', '.join(DNAS_STRATEGIES)} are)")
        return DNASSettings(
            mode="soft" if self.strategy == "fbnet" else "single", epochs=self.dnas_epochs,
            warmup_epochs=self.dnas_warmup_epochs, loss=self.dnas_loss, alpha=self.dnas_alpha, beta=self.dnas_beta,
            temperature=self.dnas_temperature, temperature_decay=self.dnas_temperature_decay,
            weight_lr=self.dnas_weight_lr, arch_lr=self.dnas_arch_lr, arch_split=self.dnas_arch_split,
            samples=self.dnas_samples, device=self.evaluation_device, batch_size=self.batch_size, seed=self.seed,
            threads=self.threads, time_limit_s=self.time_limit_s,
        )

    def identity(self) -> dict[str, Any]:
        """The settings that define *which* search this is: a resumed run must match them.
        (Budget, time limit, output paths, executor settings and, for a differentiable search, the
        number of epochs and the device may change between runs.)"""
        volatile = {f.name for f in fields(self) if f.metadata["volatile"]}
        dnas = self.strategy in DNAS_STRATEGIES  # other strategies ignore (and leave out) the dnas_* keys
        return {k: v for k, v in self.to_dict().items()
                if k not in volatile and (dnas or not k.startswith("dnas_"))}

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "config") -> SearchConfig:
        """Validate a mapping (a parsed YAML file); errors name ``source`` and the key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                close = [k for k in known if k.replace("_", "") == str(key).replace("_", "").replace("-", "")]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{source}: unknown key {key!r}{hint}; known keys: {', '.join(sorted(known))}")
        try:
            return cls(**data)
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


RANGES: dict[str, tuple[float, bool, float]] = {
    f.name: f.metadata["range"] for f in fields(SearchConfig) if f.metadata["range"] is not None}
"""The range of every numeric key, ``(low, low allowed, high)``, from its :func:`setting`. Every
number must also be finite."""


def check_range(name: str, value: float) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is finite and in the key's range
    (:data:`RANGES`); shared by the YAML validator and the ``nas search`` flags."""
    low, low_ok, high = RANGES[name]
    if not math.isfinite(value) or value < low or (value == low and not low_ok) or value > high:
        bounds = [f"{'>=' if low_ok else '>'} {low:.10g}" if math.isfinite(low) else "",
                  f"<= {high:.10g}" if math.isfinite(high) else ""]
        rule = " and ".join(b for b in bounds if b)
        raise ValueError(f"{name}: must be a finite number{' ' + rule if rule else ''}, got {value!r}")


def _check_type(name: str, value: Any, annotation: Any) -> None:
    text = str(annotation)
    optional = "None" in text
    if value is None:
        if not optional:
            raise ValueError(f"{name}: a value is required")
        return
    if text.startswith("int"):
        ok = is_int(value)
        kind = "an integer"
    elif text.startswith("float"):
        ok = is_real(value)
        kind = "a number"
    elif text.startswith("bool"):
        ok = isinstance(value, bool)
        kind = "true or false"
    else:
        ok = isinstance(value, str)
        kind = "a string"
    if not ok:
        raise ValueError(f"{name}: expected {kind}, got {value!r}")


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
    device = config.evaluation_device
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device: expected cpu, cuda, cuda:N or mps, got {device!r}")
    if config.executor == "ray" and config.num_gpus > 0 and kind != "cuda":
        raise ValueError(f"num_gpus: {config.num_gpus} GPUs reserved per evaluation, but device is {device!r}; "
                         "use device cuda (or num_gpus 0)")
    if config.executor == "ray" and config.num_gpus == 0 and kind == "cuda":
        raise ValueError("device: 'cuda' under executor ray needs num_gpus > 0 (a Ray task sees only the GPUs it "
                         "reserves)")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
