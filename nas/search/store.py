"""The durable record of a search: one Optuna study in any RDB storage (SQLite by default).

Every candidate is a trial whose params are the labels of its choices (so ``optuna-dashboard``
shows the search), with user attributes holding the architecture's compact string, its hash,
every metric and, for failures, the reason. States:

- ``COMPLETE``: evaluated; values are the objective values.
- ``FAIL``: the candidate failed (diverged, raised); counts as evaluated. A trial that was
  ``RUNNING`` when a previous run was killed is closed as ``FAIL`` without metrics and does not
  count: its candidate is evaluated again.
- ``PRUNED``: broke a hard constraint before the expensive evaluation; does not count.

Only the driver writes here (workers return results to it), and every write is one Optuna
storage transaction, so a kill at any moment loses at most the evaluation in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from nas.arch import Arch
from search_spaces.space import Point, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Seconds a SQLite connection waits on another process's lock (a dashboard reading the study)
#: before giving up; SQLite's own default of 5 s is short for a busy machine.
SQLITE_BUSY_TIMEOUT_S = 60.0
#: Attempts at opening a storage whose schema another process may be creating at that moment.
OPEN_ATTEMPTS = 5


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for ``url`` that tolerates concurrent readers.

    Opening a fresh storage creates its tables; when another process (``optuna-dashboard``, a
    script polling the study) opens the same new SQLite file at that moment, one of the two loses
    the race (``table ... already exists``, or a duplicate schema-version row). That is retried,
    as is a lock held too long.
    """
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if url.startswith("sqlite") else {}
    for attempt in range(1, OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            time.sleep(0.2 * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


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
    different settings is a ``ValueError``, so a resumed command cannot silently mix two searches.
    """

    def __init__(self, storage_url: str, name: str, space: SearchSpace, directions: Sequence[str],
                 identity: Mapping[str, Any]):
        self.space = space
        self.distributions = space.optuna_distributions(core_only=False)
        self.study = optuna.create_study(storage=open_storage(storage_url), study_name=name, directions=list(directions),
                                         load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=0))
        stored = self.study.user_attrs.get("identity")
        text = json.loads(json.dumps(dict(identity)))
        if stored is None:
            self.study.set_user_attr("identity", text)
            return
        # a key added to the settings since the run started is absent there: equal when it is None
        diff = sorted(k for k in set(stored) | set(text) if stored.get(k) != text.get(k))
        if diff:
            raise ValueError(f"the run's store already holds a different search (settings differ: {', '.join(diff)}); "
                             "use another --out directory, or the original settings to resume it")

    # ------------------------------------------------------------------------------ reading
    def _record(self, t: FrozenTrial) -> Record:
        arch = Arch.from_str(t.user_attrs["arch"])
        state = {TrialState.COMPLETE: "complete", TrialState.FAIL: "failed", TrialState.PRUNED: "infeasible"}[t.state]
        return Record(t.number, self.space.encode(arch), arch, state, dict(t.user_attrs.get("metrics", {})),
                      None if t.values is None else tuple(t.values), t.user_attrs.get("reason"))

    def history(self) -> list[Record]:
        """Finished candidates in trial order (interrupted ones left out)."""
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
        return [self._record(t) for t in sorted(trials, key=lambda t: t.number)
                if "arch" in t.user_attrs and "metrics" in t.user_attrs]

    def recover_interrupted(self) -> list[Arch]:
        """Close the trials a killed run left open; return their architectures so they are
        evaluated again. An interrupted trial ends ``FAIL`` without a ``metrics`` attribute, which
        is how :meth:`history` tells it from a failed candidate."""
        for _ in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            self.study.tell(self.study.ask(), state=TrialState.FAIL)  # enqueued, never started
        out = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study.tell(t.number, state=TrialState.FAIL)
            if "arch" in t.user_attrs:
                out.append(Arch.from_str(t.user_attrs["arch"]))
        return out

    # ------------------------------------------------------------------------------ writing
    def start(self, point: Point, arch: Arch) -> optuna.trial.Trial:
        """A ``RUNNING`` trial for ``arch`` (written before its evaluation starts)."""
        labels = self.space.labels(point)
        params = {name: labels.get(name, dist.choices[0]) for name, dist in self.distributions.items()}
        self.study.enqueue_trial(params, skip_if_exists=False)
        trial = self.study.ask(self.distributions)
        trial.set_user_attr("arch", arch.to_str())
        trial.set_user_attr("hash", arch.hash())
        return trial

    def finish(self, trial: optuna.trial.Trial, metrics: Mapping[str, float], values: Sequence[float] | None,
               reason: str | None, *, infeasible: bool = False) -> None:
        """Record the outcome: values (complete), a failure reason, or a constraint violation."""
        trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
        if reason is not None:
            trial.set_user_attr("reason", reason)
        if infeasible:
            self.study.tell(trial, state=TrialState.PRUNED)
        elif values is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, list(values))
