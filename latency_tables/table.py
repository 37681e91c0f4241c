"""The latency table: a versioned JSON file of per-op timings, and its reader and writer.

Layout (``format`` ``litenas.latency_table``, ``version`` 2)::

    {
     "format": "litenas.latency_table",
     "version": 2,
     "meta": {"device": "cpu", "device_name": "AMD EPYC", "torch": "2.13.0+cpu", "threads": 1,
              "batch_size": 1, "dtype": "float32", "backend": "eager", "channels_last": false,
              "clock": "wall", "cache": "cold", "resolution": 224, "space": "fbnet",
              "sources": ["space:fbnet", "zoo"],
              "created": "2025-01-01T00:00:00+00:00", "updated": "...", "platform": "...",
              "harness": {"warmup": 10, "min_repeats": 60, ...}},
     "calibration": null | {"method": "linear", "coef": {"sum": 1.01, "const": 0.4}, ...},
     "entries": {"<OpConfig.key()>": {"median_ms": 0.81, "p10_ms": 0.79, "p90_ms": 0.86, "n": 120}}
    }

Keys are canonical (:meth:`~search_spaces.registry.OpConfig.key`: the arguments that differ from
their defaults), and so are the hashes of the networks a calibration records
(:meth:`nas.arch.Arch.hash`). A version-1 table wrote every argument into its keys and hashed
networks over every argument; loading one re-keys its entries (and the probe an adapted table
recorded) and re-hashes its records from their architectures, so it predicts exactly as before;
saving it writes version 2.

Every problem in a file (not JSON, truncated, another format, a newer version, a missing or
mistyped field, an impossible timing) raises :class:`TableError`, a ``ValueError`` whose message
names the file and the problem. Loading a table measured on another device or torch version
emits a :class:`TableMismatchWarning`.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from latency_tables.device import device_name, fingerprint
from nas.arch import Arch
from nas.checks import is_int, is_real
from nas.io import JSONFileError, atomic_write_json, read_json_file
from search_spaces.registry import OpConfig

TABLE_FORMAT = "litenas.latency_table"
TABLE_VERSION = 2
_READABLE_VERSIONS = (1, TABLE_VERSION)
"""Version 1: keys and record hashes over every argument, re-keyed on load (see the module doc)."""

# Metadata every table carries, with the type each must have.
_META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "device": str,
    "device_name": str,
    "torch": str,
    "threads": int,
    "batch_size": int,
    "dtype": str,
    "backend": str,
    "channels_last": bool,
    "clock": str,
    "cache": str,
    "resolution": int,
    "created": str,
}
_ENTRY_FIELDS = ("median_ms", "p10_ms", "p90_ms", "n")
# Features a calibration may weigh (see latency_tables.predict), besides per-class sums.
CALIBRATION_FEATURES = ("sum", "n_ops", "mparams", "const")
CLASS_PREFIX = "sum:"
"""A calibration feature ``sum:<class>`` is the sum of the op medians of one op class (see
:func:`op_class`); its coefficient is that class's deviation from the global ``sum`` scale."""
SIZE_BUCKETS = (4, 8, 16, 32)
"""Upper edges of the feature-map sizes an op class is split by (larger maps form one more class)."""
# The metadata fields that define what a measurement means (``measure.Settings.identity``).
IDENTITY_FIELDS = ("device", "threads", "batch_size", "dtype", "backend", "channels_last", "clock", "cache")

__all__ = [
    "TABLE_FORMAT",
    "TABLE_VERSION",
    "IDENTITY_FIELDS",
    "TableError",
    "MissingKeyError",
    "TableMismatchWarning",
    "CLASS_PREFIX",
    "op_class",
    "fingerprint_diffs",
    "Timing",
    "Calibration",
    "LatencyTable",
]


class TableError(ValueError):
    """A latency table file that cannot be used; the message names the file and the problem."""


class MissingKeyError(KeyError, ValueError):
    """An op configuration the table does not hold; the message names its key."""

    def __init__(self, key: str, hint: str = ""):
        super().__init__(key)
        self.key = key
        self.hint = hint

    def __str__(self) -> str:
        return f"latency table has no entry for op {self.key!r}{self.hint}"


class TableMismatchWarning(UserWarning):
    """The table was measured on another device or torch version than the current one."""


def op_class(op: str, in_size: int) -> str:
    """The calibration class of an op: its name and the bucket of its input map size
    (``ir@8``: an inverted residual on a 5-8 pixel map).

    Why classes: a device that is, say, twice as fast as the one that built a table is not twice
    as fast at everything. Depthwise and dense convolutions, tiny and large maps, shift by
    different factors between CPUs (vector width, cache sizes, memory bandwidth), so adapting a
    table to a new device fits a scale per class (:mod:`latency_tables.adapt`).
    """
    for edge in SIZE_BUCKETS:
        if in_size <= edge:
            return f"{op}@{edge}"
    return f"{op}@big"


@dataclass(frozen=True)
class Timing:
    """Summary of one item's timing samples, in milliseconds (a table entry)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Calibration:
    """Overhead model fitted on whole-network measurements: ``latency = sum_f coef[f] * x_f``.

    Features (see :func:`latency_tables.predict.features`): ``sum`` (the sum of the op medians,
    ms), ``n_ops`` (layers, stem and head included), ``mparams`` (weights, millions), ``const``
    (1) and, for the ``per_class`` model, ``sum:<class>`` (the medians of one :func:`op_class`,
    weighted by that class's deviation from the ``sum`` coefficient; a class the fit did not
    see weighs 0). ``ridge`` is the penalty the per-class deviations were fitted under.
    ``records`` keeps the measurements the fit used, so it can be re-fitted or audited.
    ``reference`` is the drift control those measurements were timed beside
    (:func:`~latency_tables.measure.measure_archs`): its architecture and its median time then
    (``{"arch": ..., "ms": ...}``), the yardstick that later measurements are put in the
    table's units by (``nas latency validate``).

    The model is a sum over ops plus a constant, so it is written per op as well
    (:meth:`op_cost`, :attr:`constant`): a network's prediction and a differentiable search's
    expected latency use the same formula.
    """

    method: str
    coef: dict[str, float]
    fit_mape: float
    loo_mape: dict[str, float] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    ridge: float | None = None
    reference: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Calibration:
        if not isinstance(data, Mapping):
            raise TableError(f"{where}: 'calibration' must be an object or null")
        try:
            coef = {str(k): float(v) for k, v in data["coef"].items()}
            loo = {str(k): float(v) for k, v in data.get("loo_mape", {}).items()}
            ridge = data.get("ridge")
            reference = data.get("reference")
            if reference is not None:
                reference = {"arch": str(reference["arch"]), "ms": float(reference["ms"])}
                if not (math.isfinite(reference["ms"]) and reference["ms"] > 0):
                    raise ValueError(f"reference ms must be a positive number, got {reference['ms']}")
            out = cls(str(data["method"]), coef, float(data["fit_mape"]), loo,
                      list(data.get("records", [])), str(data.get("created", "")),
                      None if ridge is None else float(ridge), reference)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TableError(f"{where}: malformed 'calibration' ({type(exc).__name__}: {exc})") from None
        if not all(math.isfinite(v) for v in coef.values()):
            raise TableError(f"{where}: 'calibration' has a non-finite coefficient")
        unknown = sorted(k for k in coef if k not in CALIBRATION_FEATURES and not
                         (k.startswith(CLASS_PREFIX) and len(k) > len(CLASS_PREFIX)))
        if unknown:
            raise TableError(f"{where}: 'calibration' uses unknown feature {unknown[0]!r} "
                             f"(known: {', '.join(CALIBRATION_FEATURES)})")
        for record in out.records:
            out.check_prediction(record, where)
        return out

    def predict(self, feats: Mapping[str, float]) -> float:
        """``sum_f coef[f] * feats[f]`` (ms); a class sum absent from ``feats`` counts 0."""
        return float(sum(c * feats.get(name, 0.0) if name.startswith(CLASS_PREFIX) else c * feats[name]
                         for name, c in self.coef.items()))

    def op_cost(self, op_class_name: str, median_ms: float, mparams: float) -> float:
        """One op's share of a network's prediction (ms): its median scaled by the global and its
        class's coefficient, its weights' streaming cost and the per-op overhead."""
        scale = self.coef.get("sum", 0.0) + self.coef.get(CLASS_PREFIX + op_class_name, 0.0)
        return scale * median_ms + self.coef.get("mparams", 0.0) * mparams + self.coef.get("n_ops", 0.0)

    @property
    def constant(self) -> float:
        """The per-network term of the prediction (ms)."""
        return self.coef.get("const", 0.0)

    def check_prediction(self, record: Mapping[str, Any], where: str) -> None:
        """:class:`TableError` unless the calibration predicts > 0 ms for one of the networks it
        was fitted on (a record: ``sum_ms``, ``n_ops``, ``mparams``, ``class_sums``)."""
        try:
            feats = {"sum": float(record["sum_ms"]), "n_ops": float(record["n_ops"]),
                     "mparams": float(record.get("mparams", 0.0)), "const": 1.0}
            feats.update({CLASS_PREFIX + str(k): float(v) for k, v in record.get("class_sums", {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TableError(f"{where}: malformed 'calibration' record ({type(exc).__name__}: {exc})") from None
        ms = self.predict(feats)
        if not ms > 0:
            raise TableError(f"{where}: 'calibration' predicts {ms:.4g} ms (<= 0) for network {record.get('hash', '?')} "
                             f"(op sum {feats['sum']:.4g} ms) it was fitted on: calibrate the table again")


def fingerprint_diffs(recorded: Any, device: str) -> list[str]:
    """How this machine differs from a recorded :func:`latency_tables.device.fingerprint`, one
    phrase per field beyond the device name and torch version (empty when nothing was recorded)."""
    if not isinstance(recorded, Mapping):
        return []
    here = fingerprint(device)
    return [f"{k} {recorded[k]!r} there, {here[k]!r} here" for k in sorted(here)
            if k not in ("device_name", "torch") and k in recorded and recorded[k] != here[k]]


def now_iso() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _check_entry(key: str, value: Any, where: str) -> Timing:
    problem = f"{where}: entry {key!r}"
    if not isinstance(value, Mapping):
        raise TableError(f"{problem}: expected an object, got {type(value).__name__}")
    missing = [f for f in _ENTRY_FIELDS if f not in value]
    if missing:
        raise TableError(f"{problem}: field {missing[0]!r} missing")
    nums = {}
    for f in _ENTRY_FIELDS[:3]:
        v = value[f]
        if not is_real(v) or not math.isfinite(v) or v <= 0:
            raise TableError(f"{problem}: field {f!r} must be a finite number > 0 (a time in ms), got {v!r}")
        nums[f] = float(v)
    n = value["n"]
    if not is_int(n) or n < 1:
        raise TableError(f"{problem}: field 'n' must be an integer >= 1, got {n!r}")
    tol = 1e-9 * max(1.0, nums["p90_ms"])
    if not nums["p10_ms"] - tol <= nums["median_ms"] <= nums["p90_ms"] + tol:
        raise TableError(f"{problem}: expected p10_ms <= median_ms <= p90_ms, got {nums}")
    return Timing(nums["median_ms"], nums["p10_ms"], nums["p90_ms"], n)


def _canonical_key(key: str) -> str:
    """``key`` as :meth:`~search_spaces.registry.OpConfig.key` writes it now (a key written with
    every argument loses those equal to their defaults); a key this registry cannot read is kept as
    it is (no configuration looks it up)."""
    try:
        return OpConfig.from_key(key).key()
    except ValueError:
        return key


def _current_hash(record: dict[str, Any]) -> dict[str, Any]:
    """A calibration record with its ``hash`` derived from its ``arch`` (kept when it has none
    that parses: records written before the architecture was kept in them)."""
    try:
        return {**record, "hash": Arch.from_str(str(record["arch"])).hash()}
    except (KeyError, ValueError):
        return record


def _from_version_1(meta: dict[str, Any], entries: dict[str, Timing], calibration: Calibration | None
                    ) -> tuple[dict[str, Any], dict[str, Timing], Calibration | None]:
    """A version-1 table's contents in version 2's form: canonical keys for its entries and for
    the probe an adapted table recorded (``meta["probe"]["ms"]``), current hashes for its
    calibration records. Two keys that name one configuration keep the first one's timing (a
    table litenas wrote has none)."""
    rekeyed: dict[str, Timing] = {}
    for key, timing in entries.items():
        rekeyed.setdefault(_canonical_key(key), timing)
    probe = meta.get("probe")
    if isinstance(probe, dict) and isinstance(probe.get("ms"), dict):
        meta["probe"] = {**probe, "ms": {_canonical_key(str(k)): v for k, v in probe["ms"].items()}}
    if calibration is not None:
        calibration = replace(calibration, records=[_current_hash(r) for r in calibration.records])
    return meta, rekeyed, calibration


class LatencyTable:
    """Per-op timings measured under one set of conditions (the metadata), keyed by
    :meth:`search_spaces.registry.OpConfig.key`.

    Create one with :meth:`new` (empty, metadata from the harness settings and this machine)
    or :meth:`load`; add measurements with :meth:`add`; persist with :meth:`save` (atomic).
    """

    def __init__(self, meta: dict[str, Any], entries: dict[str, Timing] | None = None,
                 calibration: Calibration | None = None, path: Path | None = None):
        self.meta = meta
        self.entries: dict[str, Timing] = dict(entries or {})
        self.calibration = calibration
        self.path = path

    # ------------------------------------------------------------------------------------------
    @classmethod
    def new(cls, identity: Mapping[str, Any], *, resolution: int, harness: Mapping[str, Any] | None = None,
            **extra: Any) -> LatencyTable:
        """An empty table for measurements taken with ``identity`` (see
        :meth:`latency_tables.measure.Settings.identity`) at ``resolution`` on this machine.

        ``extra`` adds descriptive metadata (``space``, ``num_classes``...).
        """
        stamp = now_iso()
        meta = {
            **identity,
            "device_name": device_name(identity["device"]),
            "fingerprint": fingerprint(identity["device"]),
            "torch": torch.__version__,
            "resolution": resolution,
            **extra,
            "created": stamp,
            "updated": stamp,
            "platform": platform.platform(),
            "harness": dict(harness or {}),
        }
        return cls(meta)

    # ------------------------------------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    @property
    def resolution(self) -> int:
        return int(self.meta["resolution"])

    def get(self, key: str) -> Timing:
        """The entry for ``key``; a missing key raises :class:`MissingKeyError` naming it."""
        try:
            return self.entries[key]
        except KeyError:
            raise MissingKeyError(key, f" (table {self.describe()})") from None

    def add(self, key: str, timing: Timing) -> None:
        """Store (or replace) the timing of ``key``."""
        self.entries[key] = timing

    def describe(self) -> str:
        """One line: where it comes from and what it was measured on."""
        m = self.meta
        src = f"{self.path}: " if self.path else ""
        return (f"{src}{m.get('space', '?')} @{m['resolution']}, {m['device']} {m['device_name']!r}, "
                f"{m['threads']} thread(s), batch {m['batch_size']}, {m['dtype']}, {m['backend']}")

    def settings_identity(self) -> dict[str, Any]:
        """The measurement-defining fields, as :meth:`latency_tables.measure.Settings.identity`."""
        return {k: self.meta[k] for k in IDENTITY_FIELDS}

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "meta": self.meta,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "entries": {k: self.entries[k].to_dict() for k in sorted(self.entries)},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<table>") -> LatencyTable:
        """Parse the JSON object of a table; every problem raises :class:`TableError`."""
        if not isinstance(data, Mapping):
            raise TableError(f"{source}: expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != TABLE_FORMAT:
            raise TableError(f"{source}: not a litenas latency table ('format' is {fmt!r}, expected {TABLE_FORMAT!r})")
        version = data.get("version")
        if isinstance(version, bool) or version not in _READABLE_VERSIONS:
            raise TableError(f"{source}: unsupported table version {version!r} (this litenas reads "
                             f"{' and '.join(map(str, _READABLE_VERSIONS))})")
        for name in ("meta", "entries"):
            if name not in data:
                raise TableError(f"{source}: field {name!r} missing")
        meta = data["meta"]
        if not isinstance(meta, Mapping):
            raise TableError(f"{source}: 'meta' must be an object")
        for name, typ in _META_FIELDS.items():
            if name not in meta:
                raise TableError(f"{source}: metadata field {name!r} missing")
            value = meta[name]
            if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
                raise TableError(f"{source}: metadata field {name!r} has the wrong type ({value!r})")
        entries_raw = data["entries"]
        if not isinstance(entries_raw, Mapping):
            raise TableError(f"{source}: 'entries' must be an object")
        entries = {str(k): _check_entry(str(k), v, source) for k, v in entries_raw.items()}
        cal_raw = data.get("calibration")
        calibration = None if cal_raw is None else Calibration.from_dict(cal_raw, source)
        if version == 1:
            return cls(*_from_version_1(dict(meta), entries, calibration))
        return cls(dict(meta), entries, calibration)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write atomically (temp file + rename) to ``path`` (default: where it was loaded from)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("save: no path given and the table was not loaded from a file")
        self.meta["updated"] = now_iso()
        atomic_write_json(target, self.to_dict())
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, check_env: bool = True) -> LatencyTable:
        """Read a table file. Problems raise :class:`TableError` naming the file; with
        ``check_env`` a table from another device or torch version warns
        (:class:`TableMismatchWarning`)."""
        p = Path(path)
        try:
            data = read_json_file(p, "a latency table")
        except JSONFileError as exc:
            raise TableError(str(exc)) from None
        table = cls.from_dict(data, str(p))
        table.path = p
        if check_env:
            table.check_environment()
        return table

    def check_environment_diffs(self) -> list[str]:
        """How this machine differs from the one the table's timings hold for (device name,
        torch version, and the recorded fingerprint's fields), one phrase each."""
        diffs = []
        here = device_name(self.meta["device"])
        if here != self.meta["device_name"]:
            diffs.append(f"measured on {self.meta['device_name']!r}, this {self.meta['device']} is {here!r}")
        if torch.__version__ != self.meta["torch"]:
            diffs.append(f"measured with torch {self.meta['torch']}, this is torch {torch.__version__}")
        return diffs + fingerprint_diffs(self.meta.get("fingerprint"), self.meta["device"])

    def check_environment(self) -> list[str]:
        """:meth:`check_environment_diffs`, warning (:class:`TableMismatchWarning`) if any."""
        diffs = self.check_environment_diffs()
        if diffs:
            where = self.path or "latency table"
            warnings.warn(f"{where}: {'; '.join(diffs)}; its timings may not hold here (nas latency check --table "
                          f"{where})", TableMismatchWarning, stacklevel=3)
        return diffs
