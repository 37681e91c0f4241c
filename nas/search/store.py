"""The durable record of a search: one Optuna study in any RDB storage (SQLite by default).

Every candidate is a trial whose params are the labels of its choices (so ``optuna-dashboard``
shows the search), with user attributes holding the architecture's compact string (``arch``), its
hash (for people and dashboards: reading the store derives every hash from ``arch``, so a study
written under older hashes resumes unchanged) and, once it is judged, its ``outcome`` (state, every metric, objective values, failure
reason, whether the score evaluator saw it). States:

- ``COMPLETE``: evaluated; values are the objective values.
- ``FAIL``: the candidate failed (diverged, raised); counts as evaluated. A trial that was
  ``RUNNING`` when a previous run was killed, and has no outcome, is closed as ``FAIL`` without
  one and does not count: its candidate is evaluated again (its score comes from the result cache
  when the evaluation had finished).
- ``PRUNED``: broke a hard constraint before the expensive evaluation; does not count.

Only the driver writes here (workers return results to it). A candidate costs three storage
transactions: :meth:`RunStore.start` creates the ``RUNNING`` trial with its params and
architecture in one; :meth:`RunStore.finish` writes the whole outcome as one attribute, then
closes the trial. A kill between those two leaves a ``RUNNING`` trial *with* its outcome, which
:meth:`RunStore.recover_interrupted` closes as that outcome says: a kill at any moment loses at
most the evaluation in flight, and never a judged candidate.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import optuna
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from nas.arch import Arch
from search_spaces.space import Point, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
logger = logging.getLogger(__name__)

#: Seconds a SQLite connection waits on another process's lock (a dashboard reading the study)
#: before giving up; SQLite's own default of 5 s is short for a busy machine.
SQLITE_BUSY_TIMEOUT_S = 60.0
#: Attempts at opening a storage whose schema another process may be creating at that moment.
OPEN_ATTEMPTS = 5
#: What a damaged or unreachable database raises (SQLAlchemy's errors, and Optuna's wrapping of them).
_DATABASE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)

T = TypeVar("T")


class StoreError(ValueError):
    """The study store cannot be opened, read or written; the message names it (the database file
    of a SQLite URL) and what is wrong."""


def describe_storage(url: str) -> str:
    """How messages name a storage: the database file of a SQLite URL, else the URL."""
    prefix = "sqlite:///"
    return f"study store {url[len(prefix):]}" if url.startswith(prefix) else f"study store {url!r}"


def _storage_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Turn the database errors a :class:`RunStore` method meets into a :class:`StoreError`
    naming the store (a damaged SQLite file is otherwise an 80-line SQLAlchemy trace)."""

    @functools.wraps(method)
    def wrapper(self: RunStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (*_DATABASE_ERRORS, json.JSONDecodeError, RecursionError) as exc:  # JSON: an attribute was altered
            raise StoreError(f"{self.where}: {_damage(exc)}{self.recovery}") from exc

    return wrapper


def _damage(exc: BaseException) -> str:
    """The first line of a database error, with what it means."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"cannot be read or written, the file may be damaged ({first})"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for ``url`` that tolerates concurrent readers.

    Opening a fresh storage creates its tables; when another process (``optuna-dashboard``, a
    script polling the study) opens the same new SQLite file at that moment, one of the two loses
    the race (``table ... already exists``, or a duplicate schema-version row). That is retried,
    as is a lock held too long. A URL no storage can open, or a schema of another Optuna version,
    is a :class:`StoreError` naming it; a damaged database raises SQLAlchemy's error (a
    :class:`RunStore` names the file and how to recover).
    """
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if url.startswith("sqlite") else {}
    for attempt in range(1, OPEN_ATTEMPTS):
        try:
            return _rdb_storage(url, engine_kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            time.sleep(0.2 * attempt)
    return _rdb_storage(url, engine_kwargs)


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """Optuna's storage for ``url``; a URL it cannot open, or a schema of an Optuna version it
    cannot read, is a :class:`StoreError`."""
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
        raise StoreError(f"--storage {url!r}: not a database URL this installation can open ({exc}); "
                         "e.g. sqlite:///PATH/study.db") from exc
    except RuntimeError as exc:  # Optuna: the schema of an Optuna version this one cannot read
        raise StoreError(f"{describe_storage(url)}: {exc}") from exc


@dataclass(frozen=True)
class Record:
    """One finished candidate as read back from the store."""

    number: int
    point: Point
    arch: Arch
    state: str  # "complete" | "failed" | "infeasible"
    metrics: dict[str, float]
    values: tuple[float, ...] | None
    reason: str | None
    scored: bool = True
    """Whether the candidate got past the screen to the score evaluator (a resumed run replays
    the runner's stopping rules, which count proposals the screen rejected)."""

    @property
    def evaluated(self) -> bool:
        return self.state in ("complete", "failed")

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.number, "hash": self.arch.hash(), "state": self.state, "metrics": self.metrics,
                "values": None if self.values is None else list(self.values), "reason": self.reason,
                "arch": self.arch.to_str()}


class RunStore:
    """Opens (or creates) the study ``name`` in ``storage_url`` for ``space``.

    ``identity`` (the run's defining settings) is stored with a new study; reopening it with
    different settings is a ``ValueError`` naming them, so a resumed command cannot silently mix
    two searches (``resolved``: the values that settings stored as ``None`` stood for), unless
    the study scored nothing: then it starts over with the new settings. A
    database that cannot be read or written is a :class:`StoreError` naming it, followed by
    ``recovery`` (how to get the run back).
    """

    def __init__(self, storage_url: str, name: str, space: SearchSpace, directions: Sequence[str],
                 identity: Mapping[str, Any], *, recovery: str = "", resolved: Mapping[str, Any] | None = None):
        self.space = space
        self.resolved = dict(resolved or {})
        self.where = describe_storage(storage_url)
        self.recovery = f"; {recovery}" if recovery else ""
        self.distributions = space.optuna_distributions(core_only=False)
        self._open(storage_url, name, directions, json.loads(json.dumps(dict(identity))))

    @_storage_errors
    def _open(self, storage_url: str, name: str, directions: Sequence[str], identity: dict[str, Any]) -> None:
        """Open the storage, load or create the study, and compare ``identity`` with the stored one.

        A study that scored nothing takes the new settings: one without a trial (an empty run
        takes the settings of the run that fills it), and one whose every candidate stopped at the
        screen (a search stopped because its constraints admitted nothing, run again with relaxed
        ones): that study is dropped and begun afresh, since its verdicts were made under the old
        settings (the screen's latencies and counts stay in the result cache). Any other study
        refuses different settings, naming each."""
        self.storage = open_storage(storage_url)
        self._load_study(name, directions)
        stored = self.study.user_attrs.get("identity")
        trials = self.study.get_trials(deepcopy=False)
        if stored is not None and trials:
            diff = _differences(stored, identity, self.resolved)
            if not diff:
                return
            if not all(_stopped_at_screen(t) for t in trials):
                raise ValueError(f"{self.where} already holds a different search (settings differ: "
                                 f"{'; '.join(diff)}); use another --out directory, or the original settings to "
                                 "resume it")
            logger.warning("%s: none of its %d candidates got past the screen; starting it over with the new settings "
                           "(%s)", self.where, len(trials), "; ".join(diff))
            optuna.delete_study(study_name=name, storage=self.storage)
            self._load_study(name, directions)
        self.study.set_user_attr("identity", identity)

    def _load_study(self, name: str, directions: Sequence[str]) -> None:
        """Load the study ``name``, or create it with ``directions``."""
        self.study = optuna.create_study(storage=self.storage, study_name=name, directions=list(directions),
                                         load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=0))
        self.study_id = self.storage.get_study_id_from_name(name)

    # ------------------------------------------------------------------------------ reading
    def _decode(self, t: FrozenTrial) -> tuple[Arch, Point]:
        """The architecture stored with trial ``t`` and its point; one that no longer parses (or
        is not a point of the space) is a ``ValueError`` saying it came from the store, and which
        trial."""
        try:
            arch = Arch.from_str(t.user_attrs["arch"])
            return arch, self.space.encode(arch)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{self.where}: trial {t.number}: the stored architecture is invalid ({exc}); the store "
                             "was altered or written by another search: use another --out directory") from None

    def _record(self, t: FrozenTrial, outcome: Mapping[str, Any]) -> Record:
        arch, point = self._decode(t)
        try:
            values = outcome["values"]
            return Record(t.number, point, arch, str(outcome["state"]),
                          {str(k): float(v) for k, v in outcome["metrics"].items()},
                          None if values is None else tuple(float(v) for v in values), outcome["reason"],
                          outcome["state"] != "infeasible" and outcome.get("scored") is not False)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{self.where}: trial {t.number}: the stored outcome is invalid ({exc!r}); the store "
                             "was altered: use another --out directory") from None

    @_storage_errors
    def history(self) -> list[Record]:
        """Judged candidates in trial order (interrupted ones left out)."""
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
        out = []
        for t in sorted(trials, key=lambda t: t.number):
            outcome = _outcome(t)
            if "arch" in t.user_attrs and outcome is not None:
                out.append(self._record(t, outcome))
        return out

    @_storage_errors
    def recover_interrupted(self) -> list[Arch]:
        """Close the trials a killed run left open; return the architectures to evaluate again.

        A ``RUNNING`` trial whose outcome was written (the run was killed between the two
        transactions of :meth:`finish`) is closed as that outcome says and counts. One without an
        outcome ends ``FAIL`` without one, which is how :meth:`history` tells it from a failed
        candidate, and its architecture is returned."""
        for _ in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            self.study.tell(self.study.ask(), state=TrialState.FAIL)  # enqueued by an older litenas, never started
        out = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            outcome = _outcome(t)
            if outcome is not None:
                self._close(t.number, outcome)
                continue
            self.study.tell(t.number, state=TrialState.FAIL)
            if "arch" in t.user_attrs:
                out.append(self._decode(t)[0])
        return out

    # ------------------------------------------------------------------------------ writing
    @_storage_errors
    def start(self, point: Point, arch: Arch) -> int:
        """Create the ``RUNNING`` trial of ``arch`` (params and architecture in one transaction,
        written before its evaluation starts); return its number."""
        labels = self.space.labels(point)
        params = {name: labels.get(name, dist.choices[0]) for name, dist in self.distributions.items()}
        template = optuna.trial.create_trial(state=TrialState.RUNNING, params=params, distributions=self.distributions,
                                             user_attrs={"arch": arch.to_str(), "hash": arch.hash()})
        trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        return self.storage.get_trial_number_from_id(trial_id)

    @_storage_errors
    def finish(self, number: int, metrics: Mapping[str, float], values: Sequence[float] | None,
               reason: str | None, *, infeasible: bool = False, at_screen: bool = False) -> None:
        """Record the outcome of trial ``number``: values (complete), a failure reason, or a
        constraint violation; ``at_screen``: the candidate stopped at the cheap screen and was never
        scored (a run of such candidates only may take other settings, see :meth:`_open`). The
        outcome is one attribute (one transaction) written before the state, so a kill between the
        two loses nothing (see :meth:`recover_interrupted`)."""
        state = "infeasible" if infeasible else "failed" if values is None else "complete"
        outcome = {"state": state, "metrics": {k: float(v) for k, v in metrics.items()},
                   "values": None if values is None else [float(v) for v in values], "reason": reason,
                   "scored": not (at_screen or infeasible)}
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        self.storage.set_trial_user_attr(trial_id, "outcome", outcome)
        self._close(number, outcome)

    def _close(self, number: int, outcome: Mapping[str, Any]) -> None:
        """Set the final state of trial ``number`` from its ``outcome``."""
        if outcome["state"] == "complete":
            self.study.tell(number, list(outcome["values"]))
        else:
            self.study.tell(number, state=TrialState.PRUNED if outcome["state"] == "infeasible" else TrialState.FAIL)


def _differences(stored: Mapping[str, Any], given: Mapping[str, Any], resolved: Mapping[str, Any]) -> list[str]:
    """``key (store: X, now: Y)`` for every setting that differs, nested mappings (the search's
    config) compared key by key. A key added to the settings since the run started is absent
    there: equal when it is ``None``. A key of ``resolved`` stored as ``None`` (left to a default
    resolved when the run started, such as the table's resolution) stands for its resolved value."""
    out = []
    for key in sorted(set(stored) | set(given)):
        old, new = stored.get(key), given.get(key)
        if old is None and key in resolved:
            old = resolved[key]
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += _differences(old, new, resolved)
        elif old != new:
            out.append(f"{key} (store: {old!r}, now: {new!r})")
    return out


def _stopped_at_screen(t: FrozenTrial) -> bool:
    """Whether trial ``t`` was judged and never scored: rejected by a constraint, or failed at the
    screen. (An outcome written before ``scored`` was recorded counts as scored unless rejected; a
    trial without an outcome may have been scored when its run was killed.)"""
    outcome = _outcome(t)
    return outcome is not None and (outcome["state"] == "infeasible" or outcome.get("scored") is False)


def _outcome(t: FrozenTrial) -> dict[str, Any] | None:
    """The judged outcome of trial ``t`` (``None`` if it was never judged). Stores written before
    the ``outcome`` attribute existed kept ``metrics`` and ``reason`` apart, the state in the
    trial's."""
    if "outcome" in t.user_attrs:
        return dict(t.user_attrs["outcome"])
    if "metrics" not in t.user_attrs or t.state == TrialState.RUNNING:
        return None
    if t.state == TrialState.FAIL and t.user_attrs.get("reason") is None:
        return None  # killed between the old two writes and closed blind: judged again (from the cache)
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "infeasible"}.get(t.state, "failed")
    return {"state": state, "metrics": t.user_attrs["metrics"], "values": t.values, "reason": t.user_attrs.get("reason")}
