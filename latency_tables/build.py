"""Build a latency table: measure every op configuration a search space (and optionally the zoo)
can produce at one resolution.

Runs on the target device with only torch and litenas's core installed::

    python -m latency_tables build --space fbnet --resolution 224 --device cpu --threads 1 \\
        --out fbnet_224_cpu.json

(the same as ``nas latency build ...``). The build is resumable: re-running skips every key the
output file already holds, and the file is rewritten atomically (at most every
``--checkpoint-seconds``, after a group of ``--interleave`` ops), so killing it loses at most
the last few seconds of measurements and never corrupts the file.

A shared machine drifts for minutes at a time (15-25% on the 2-core AMD EPYC VM: see
``latency_tables/README.md``), so ops timed ten minutes apart would not compare. With the drift
control (the default for a new table; ``--no-control``), every group of ops is timed beside one
control op (:func:`~latency_tables.measure.control_op`) and scaled to the control's time when
the build began: the table records the control and that time (``meta["op_control"]``), and a
resumed build, hours or reboots later, scales to the same anchor. A table begun without it is
resumed without it, so its entries stay in one kind of units.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from latency_tables.measure import Settings, control_op, measure_module, measure_ops, op_input_shape
from latency_tables.predict import op_control
from latency_tables.sampling import open_space
from latency_tables.table import LatencyTable
from search_spaces.registry import OpConfig

__all__ = ["unique_configs", "space_configs", "build_table"]


def _anchor(control: OpConfig, settings: Settings, times: int = 3) -> dict[str, Any]:
    """The drift control of a new table: the op and its median over ``times`` measurements now
    (the speed every entry is scaled to)."""
    module, shape = control.build(), op_input_shape(control, settings.batch_size)
    ms = sorted(measure_module(module, shape, settings).median_ms for _ in range(times))
    return {"key": control.key(), "ms": ms[len(ms) // 2]}


def unique_configs(configs: Iterable[OpConfig]) -> list[OpConfig]:
    """``configs`` without repeated keys, first occurrence kept, order preserved."""
    seen: dict[str, OpConfig] = {}
    for c in configs:
        seen.setdefault(c.key(), c)
    return list(seen.values())


def space_configs(space: str, resolution: int, *, extra: bool = False, num_classes: int | None = None
                  ) -> list[OpConfig]:
    """Every distinct op configuration of ``space`` at ``resolution``: of the points its sampler
    and mutations reach (its *core* values), or with ``extra`` of every point it holds."""
    sp = open_space(space, resolution, num_classes)
    if "core_only" in inspect.signature(sp.op_configs).parameters:
        return unique_configs(sp.op_configs(resolution, core_only=not extra))
    return unique_configs(sp.op_configs(resolution))


def _check_compatible(table: LatencyTable, settings: Settings, resolution: int) -> None:
    have = table.settings_identity()
    want = settings.identity()
    diffs = [f"{k} {have[k]!r} (asked {want[k]!r})" for k in want if have[k] != want[k]]
    if table.resolution != resolution:
        diffs.append(f"resolution {table.resolution} (asked {resolution})")
    if diffs:
        raise ValueError(f"{table.path}: cannot resume, the table was measured with {', '.join(diffs)}; "
                         "use another --out file")


def build_table(
    configs: Sequence[OpConfig],
    out: str | Path,
    settings: Settings,
    *,
    resolution: int,
    sources: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    interleave: int = 8,
    checkpoint_seconds: float = 15.0,
    limit: int | None = None,
    progress: bool = True,
    control: bool = True,
) -> LatencyTable:
    """Measure every configuration in ``configs`` that ``out`` does not hold yet, and save.

    Args:
        configs: op configurations (duplicates are measured once).
        out: the table file; an existing one is resumed (it must have been measured with the
            same settings identity and resolution, else ``ValueError``).
        settings: how to measure.
        resolution: network input resolution the configurations belong to (metadata).
        sources: what the configurations come from (``space:fbnet``, ``zoo``), merged into the
            metadata.
        meta: descriptive metadata (``space``, ``num_classes``); resuming a table that holds
            another value for one of them raises ``ValueError``.
        interleave: ops measured together, interleaved (see :mod:`latency_tables.measure`).
        checkpoint_seconds: the file is saved (atomically) after the first group of ops that
            ends this long after the last save, and at the end; 0 saves after every group.
        limit: measure at most this many new ops in this run (the rest stays for a later run).
        progress: show a progress bar (hidden anyway when stderr is not a terminal).
        control: time a new table's ops beside a drift control (module docstring); a resumed
            table keeps what it began with.

    Returns:
        The table, as saved in ``out``.
    """
    if interleave < 1:
        raise ValueError(f"interleave must be >= 1, got {interleave}")
    out = Path(out)
    if out.exists():
        table = LatencyTable.load(out)
        _check_compatible(table, settings, resolution)
    else:
        table = LatencyTable.new(settings.identity(), resolution=resolution, harness=settings.harness())
    for name, value in (meta or {}).items():
        if table.meta.setdefault(name, value) != value:
            raise ValueError(f"{out}: cannot resume, the table was built for {name} {table.meta[name]!r} "
                             f"(asked {value!r}); use another --out file")
    table.meta["sources"] = sorted(set(table.meta.get("sources", [])) | set(sources))
    wanted = unique_configs(configs)
    todo = [c for c in wanted if c.key() not in table]
    done_before = len(wanted) - len(todo)
    if limit is not None:
        todo = todo[:max(0, limit)]
    fresh = len(table) == 0 and "op_control" not in table.meta
    if fresh and control and todo:
        table.meta["op_control"] = _anchor(control_op(wanted), settings)
    ctrl, anchor_ms = op_control(table) or (None, None)
    table.save(out)
    with tqdm(total=done_before + len(todo), initial=done_before, desc="ops", unit="op",
              disable=None if progress else True) as bar:
        saved = time.monotonic()
        try:
            for start in range(0, len(todo), interleave):
                chunk = todo[start:start + interleave]
                timings = measure_ops(chunk, settings, control=ctrl, anchor_ms=anchor_ms)
                for cfg, timing in zip(chunk, timings, strict=True):
                    table.add(cfg.key(), timing)
                bar.update(len(chunk))
                if time.monotonic() - saved >= checkpoint_seconds or start + interleave >= len(todo):
                    table.save(out)
                    saved = time.monotonic()
        except KeyboardInterrupt:
            table.save(out)  # keep what was measured since the last checkpoint
            raise
    return table
