"""The command line of the latency tools: ``build``, ``calibrate``, ``validate``, ``adapt``,
``check`` and ``list``, the only module of :mod:`latency_tables` that knows about ``argparse``
(the others are library functions: :func:`~latency_tables.build.build_table`,
:func:`~latency_tables.predict.calibrate`, :func:`~latency_tables.validate.validate`,
:func:`~latency_tables.adapt.adapt`, :func:`~latency_tables.check.check`).

The same sub-commands serve ``nas latency ...`` (:mod:`nas.cli.latency`) and
``python -m latency_tables ...``, the entry point for a target device that has only torch and
litenas's core.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import latency_tables
from latency_tables import adapt, build, check, predict, validate
from latency_tables.adapt import adapt as adapt_table
from latency_tables.build import build_table, space_configs, unique_configs
from latency_tables.check import check as check_table
from latency_tables.check import verdict_line
from latency_tables.measure import BACKENDS, CACHES, CLOCKS, DTYPES, Settings
from latency_tables.predict import METHODS, LatencyPredictor, calibrate
from latency_tables.sampling import sample_archs, stratified_archs, zoo_archs
from latency_tables.table import LatencyTable
from latency_tables.validate import plot_report
from latency_tables.validate import validate as validate_table
from nas.cli.output import print_json, print_table
from nas.io import atomic_write_json
from search_spaces.registry import OpConfig

__all__ = ["add_commands", "main"]

log = logging.getLogger(__name__)


def _harness_arguments(parser: argparse.ArgumentParser, *, passes: bool = False) -> None:
    """Command-line options for how long the harness samples (the :class:`Settings` knobs), and
    ``--passes`` where whole networks are timed (:func:`measure_archs`)."""
    d = Settings()
    g = parser.add_argument_group("sampling")
    if passes:
        g.add_argument("--passes", type=int, default=3,
                       help="passes over all networks, each in a new order; figures are medians over "
                            "passes, so a burst of machine noise during one pass moves nothing (default %(default)s)")
        g.add_argument("--no-control", dest="control", action="store_false",
                       help="time the networks without a drift control (by default every group of networks is timed "
                            "beside one control network and scaled by its speed then against its median, which takes "
                            "out minutes-long drifts of a shared machine)")
    g.add_argument("--warmup", type=int, default=d.warmup, help="untimed calls per item (default %(default)s)")
    g.add_argument("--min-repeats", type=int, default=d.min_repeats, help="samples per item at least (default %(default)s)")
    g.add_argument("--max-repeats", type=int, default=d.max_repeats, help="samples per item at most (default %(default)s)")
    g.add_argument("--max-seconds", type=float, default=d.max_seconds,
                   help="sampling time per item after which it stops (default %(default)s)")
    g.add_argument("--rel-ci", type=float, default=d.rel_ci,
                   help="stop once the 95%% CI of the median is within +-this fraction (default %(default)s)")


def _harness_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Settings` knobs given by :func:`_harness_arguments` options."""
    return {"warmup": args.warmup, "min_repeats": args.min_repeats, "max_repeats": args.max_repeats,
            "max_seconds": args.max_seconds, "rel_ci": args.rel_ci}


# ---------------------------------------------------------------------------------------------
# build

def _build_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``build`` (shared by ``nas latency build`` and ``python -m latency_tables.build``)."""
    parser.add_argument("--space", help="search space whose op configurations to measure")
    parser.add_argument("--extra", action="store_true",
                        help="with --space: also the ops of its extra (encode-only) values, not just the "
                             "core values its sampler draws from")
    parser.add_argument("--zoo", action="store_true",
                        help="also measure every zoo entry (fixed point) whose input is --resolution")
    parser.add_argument("--resolution", type=int, required=True, help="network input resolution")
    parser.add_argument("--num-classes", type=int,
                        help="classifier outputs of the space's networks (default: the space's own)")
    parser.add_argument("--out", required=True, help="table file (JSON); an existing one is resumed")
    g = parser.add_argument_group("what is measured (recorded in the table)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default %(default)s)")
    g.add_argument("--threads", type=int, default=1, help="intra-op CPU threads (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=1, help="images per call (default %(default)s)")
    g.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="default %(default)s")
    g.add_argument("--backend", default="eager", choices=BACKENDS, help="default %(default)s")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    g.add_argument("--clock", default="wall", choices=CLOCKS,
                   help="wall time, or the thread's CPU time (1 CPU thread; for a shared machine)")
    g.add_argument("--cache", default="cold", choices=CACHES,
                   help="cold: evict caches and rewrite the input before each timed call, as within a "
                        "network (default); warm: calls back to back")
    _harness_arguments(parser)
    parser.add_argument("--interleave", type=int, default=8,
                        help="ops measured together, interleaved against noise (default %(default)s)")
    parser.add_argument("--checkpoint-seconds", type=float, default=15.0,
                        help="save (atomically) at most this often (default %(default)s)")
    parser.add_argument("--limit", type=int, help="measure at most this many new ops in this run")
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="time a new table's ops without a drift control (by default every group of ops is "
                             "timed beside one control op and scaled to its time when the build began; a "
                             "resumed table keeps what it began with)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _run_build(args: argparse.Namespace) -> int:
    """Handler of ``build``: measure, save, print a summary."""
    if not args.space and not args.zoo:
        raise ValueError("nothing to measure: give --space NAME and/or --zoo")
    settings = Settings(device=args.device, threads=args.threads, batch_size=args.batch_size, dtype=args.dtype,
                        backend=args.backend, channels_last=args.channels_last, clock=args.clock, cache=args.cache,
                        **_harness_kwargs(args))
    configs: list[OpConfig] = []
    sources: list[str] = []
    meta: dict[str, Any] = {}
    # The zoo first: few ops, and the ones a search's report compares against.
    if args.zoo:
        archs = zoo_archs(args.resolution, args.num_classes)
        if not archs:
            raise ValueError(f"no zoo entry has input resolution {args.resolution}")
        for arch in archs.values():
            configs += arch.op_configs()
        sources.append("zoo")
    if args.space:
        configs += space_configs(args.space, args.resolution, extra=args.extra, num_classes=args.num_classes)
        sources.append(f"space:{args.space}" + ("+extra" if args.extra else ""))
        meta["space"] = args.space
        if args.num_classes is not None:
            meta["num_classes"] = args.num_classes
    wanted = len(unique_configs(configs))
    table = build_table(configs, args.out, settings, resolution=args.resolution, sources=sources, meta=meta,
                        interleave=args.interleave, checkpoint_seconds=args.checkpoint_seconds, limit=args.limit,
                        control=args.control)
    missing = sum(1 for c in unique_configs(configs) if c.key() not in table)
    summary: dict[str, Any] = {"table": str(table.path), "ops_wanted": wanted, "entries": len(table),
                               "still_missing": missing, "meta": table.meta}
    if args.json:
        print_json(summary)
    else:
        print(f"{table.path}: {len(table)} entries ({wanted} wanted, {missing} still missing); {table.describe()}")
    return 0


# ---------------------------------------------------------------------------------------------
# predict

def _calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``calibrate``."""
    parser.add_argument("--table", required=True, help="latency table file to calibrate (updated in place)")
    parser.add_argument("--space", help="search space to sample networks from (default: the table's)")
    parser.add_argument("-n", type=int, default=30, help="random networks to measure (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="sampling seed; keep it apart from validation's (default %(default)s)")
    parser.add_argument("--method", default="auto", choices=("auto", *METHODS),
                        help="overhead model (default: lowest leave-one-out MAPE)")
    parser.add_argument("--measure-missing", action="store_true",
                        help="measure ops the table lacks on the spot and add them")
    _harness_arguments(parser, passes=True)
    parser.add_argument("--json", action="store_true", help="print the calibration as JSON")


def _run_calibrate(args: argparse.Namespace) -> int:
    """Handler of ``calibrate``."""
    table = LatencyTable.load(args.table)
    space = args.space or table.meta.get("space")
    if not space:
        raise ValueError(f"{args.table}: the table names no search space; give --space")
    archs = sample_archs(space, table.resolution, args.n, args.seed, table.meta.get("num_classes"))
    cal = calibrate(table, archs, method=args.method, measure_missing=args.measure_missing,
                    harness=_harness_kwargs(args), passes=args.passes, control=args.control)
    table.meta["calibration_space"] = space
    table.meta["calibration_seed"] = args.seed
    table.save()
    out = {k: v for k, v in cal.to_dict().items() if k != "records"}
    if args.json:
        print_json(out)
    else:
        terms = " + ".join(f"{v:.4g}*{k}" for k, v in cal.coef.items())
        loo = ", ".join(f"{m} {v:.2f}%" for m, v in cal.loo_mape.items() if np.isfinite(v))
        print(f"{table.path}: calibrated on {len(archs)} networks: latency = {terms} (method {cal.method}, "
              f"fit MAPE {cal.fit_mape:.2f}%; leave-one-out MAPE: {loo})")
    return 0


# ---------------------------------------------------------------------------------------------
# validate

def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``validate``."""
    parser.add_argument("--table", required=True, help="latency table file")
    parser.add_argument("--space", help="search space to sample networks from (default: the table's)")
    parser.add_argument("-n", type=int, default=100, help="sampled networks (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    parser.add_argument("--sampling", choices=("stratified", "random"), default="stratified",
                        help="stratified: spread evenly over the space's latency range, its fastest and slowest "
                             "networks included; random: as the space samples, most of them mid-range "
                             "(default %(default)s)")
    parser.add_argument("--zoo", action="store_true",
                        help="also measure the zoo entries whose input is the table's resolution (with its number "
                             "of classes)")
    parser.add_argument("--measure-missing", action="store_true",
                        help="measure ops the table lacks on the spot, add them and save the table")
    parser.add_argument("--report", help="JSON report path (default: TABLE with .validation.json)")
    parser.add_argument("--plot", help="PNG path (default: TABLE with .validation.png)")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    _harness_arguments(parser, passes=True)
    parser.add_argument("--rounds", type=int, default=1,
                        help="independent rounds of measurement per network (each --passes passes); with 2 or more "
                             "the report says how well this machine agrees with itself, the ceiling of any table's "
                             "figures here (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _default_path(table: Path, suffix: str) -> Path:
    return table.with_name(table.stem + suffix)


def _run_validate(args: argparse.Namespace) -> int:
    """Handler of ``validate``: measure, write report and plot, print the figures."""
    if args.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {args.rounds}")
    table = LatencyTable.load(args.table)
    space = args.space or table.meta.get("space")
    if not space:
        raise ValueError(f"{args.table}: the table names no search space; give --space")
    if table.calibration is None:
        warnings.warn(f"{args.table}: the table is not calibrated; predicting the plain sum of op medians "
                      "(run `nas latency calibrate` first)", stacklevel=1)
    elif table.meta.get("calibration_space") == space and table.meta.get("calibration_seed") == args.seed:
        warnings.warn(f"validating on the networks the table was calibrated on (space {space}, seed {args.seed}); "
                      "use another --seed for an honest figure", stacklevel=1)
    if args.sampling == "stratified" and args.measure_missing:
        log.warning("--measure-missing: sampling at random (stratifying needs the table to price every network)")
        args.sampling = "random"
    if args.sampling == "stratified":
        archs = stratified_archs(space, table.resolution, args.n, args.seed, LatencyPredictor(table).op_sum,
                                 table.meta.get("num_classes"))
    else:
        archs = sample_archs(space, table.resolution, args.n, args.seed, table.meta.get("num_classes"))
    fixed = zoo_archs(table.resolution, table.meta.get("num_classes")) if args.zoo else {}
    report = validate_table(table, archs, fixed_points=fixed, measure_missing=args.measure_missing,
                      harness=_harness_kwargs(args), passes=args.passes, rounds=args.rounds, control=args.control)
    report.update({"space": space, "seed": args.seed, "sampling": args.sampling})
    if report["ops_measured_on_the_spot"]:
        table.save()
    table_path = Path(args.table)
    report_path = Path(args.report) if args.report else _default_path(table_path, ".validation.json")
    atomic_write_json(report_path, report)
    plot_path = None
    if not args.no_plot:
        try:
            plot_path = plot_report(report, args.plot or _default_path(table_path, ".validation.png"))
        except ImportError:
            log.warning("matplotlib is not installed: no plot written")
    summary = {"report": str(report_path), "plot": str(plot_path) if plot_path else None,
               "metrics": report["metrics"], "metrics_uncalibrated": report["metrics_uncalibrated"],
               "metrics_fixed_points": report["metrics_fixed_points"], "repeatability": report["repeatability"]}
    if args.json:
        print_json(summary)
        return 0
    for label, key in (("random networks", "metrics"), ("uncalibrated sum", "metrics_uncalibrated"),
                       ("fixed points", "metrics_fixed_points")):
        m = report[key]
        if m.get("n"):
            print(f"{label:>17}: n={m['n']}  MAPE {m['mape_pct']:.2f}%  within 5%: {m['within_5pct']:.0%}  "
                  f"within 10%: {m['within_10pct']:.0%}  Kendall tau {m['kendall_tau']:.3f}  "
                  f"Spearman rho {m['spearman_rho']:.3f}  worst {m['max_abs_error_pct']:.1f}%")
    for label, key in (("random networks", "random"), ("fixed points", "fixed_points")):
        r = report["repeatability"][key]
        if r.get("n"):
            print(f"{label:>17}: {r['rounds']} rounds within 10% of each other: {r['within_10pct']:.0%} "
                  f"(within 5%: {r['within_5pct']:.0%}), spread median {r['median_spread_pct']:.1f}% "
                  f"max {r['max_spread_pct']:.1f}%, last/first round x{r['last_over_first']:.2f}  "
                  "(this machine's own noise: no table can be judged closer)")
    drift = report["drift"]
    if drift:
        print(f"{'drift control':>17}: {drift['chunks']} groups, control network {drift['control_ms_min']:.2f}-"
              f"{drift['control_ms_max']:.2f} ms (median {drift['control_ms_median']:.2f}); every group scaled to "
              + ("the median" if not drift["table_units"] else
                 f"the table's reference, {drift['speed_vs_table']:.2f}x the speed this machine ran at then"))
    print(f"report: {report_path}" + (f"  plot: {plot_path}" if plot_path else ""))
    return 0


# ---------------------------------------------------------------------------------------------
# adapt

def _adapt_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adapt``."""
    parser.add_argument("--table", required=True, help="the source table (shipped name or file)")
    parser.add_argument("--out", required=True, help="where to write the adapted table (the source is not changed)")
    parser.add_argument("-n", type=int, default=40,
                        help="networks to measure, spread over the space's latency range (default %(default)s)")
    parser.add_argument("--seed", type=int, default=3,
                        help="sampling seed; validate with another (default %(default)s)")
    parser.add_argument("--no-zoo", action="store_true",
                        help="leave out the zoo's fixed points at the table's resolution (measured by default)")
    parser.add_argument("--method", default="auto", choices=("auto", *METHODS),
                        help="calibration model (default: lowest leave-one-out MAPE, per_class among them)")
    _harness_arguments(parser, passes=True)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_adapt(args: argparse.Namespace) -> int:
    """Handler of ``adapt``."""
    if args.n < 0:
        raise ValueError(f"-n must be >= 0, got {args.n}")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out: {out} is a directory; give the adapted table's file name")
    source = latency_tables.load(args.table, check_env=False)
    space = source.meta.get("space")
    if args.n and not space:
        raise ValueError(f"{args.table}: the table names no search space to sample networks from; use -n 0")
    predictor = LatencyPredictor(source)
    archs = (stratified_archs(space, source.resolution, args.n, args.seed, predictor.op_sum,
                              source.meta.get("num_classes")) if args.n else [])
    fixed = {} if args.no_zoo else {name: a for name, a in zoo_archs(source.resolution, source.meta.get("num_classes"))
                                    .items() if all(c.key() in source for c in a.op_configs())}
    adapted, report = adapt_table(source, archs, fixed, method=args.method, harness=_harness_kwargs(args),
                            passes=args.passes, control=args.control)
    adapted.meta["calibration_space"] = space
    adapted.meta["calibration_seed"] = args.seed
    adapted.save(out)
    report["out"] = str(out)
    if args.json:
        print_json(report)
        return 0
    print(f"{out}: {source.meta['device_name']!r} -> {adapted.meta['device_name']!r}, calibration {report['method']} "
          f"fitted on {len(archs)} networks + {len(fixed)} fixed points ({report['measure_seconds']:.0f} s measuring)")
    for label, key in (("before", "before"), ("after (leave-one-out)", "leave_one_out")):
        for kind in ("random", "fixed_points"):
            m = report[key][kind]
            if m.get("n"):
                print(f"{label:>22} {kind:>12}: n={m['n']}  MAPE {m['mape_pct']:.2f}%  within 10%: "
                      f"{m['within_10pct']:.0%}  Kendall tau {m['kendall_tau']:.3f}  worst {m['max_abs_error_pct']:.1f}%")
    return 0


# ---------------------------------------------------------------------------------------------
# check

def _check_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``check``."""
    parser.add_argument("--table", required=True, help="latency table (shipped name or file)")
    parser.add_argument("-n", type=int, default=6,
                        help="whole networks to measure besides the probe, 0 for the probe only (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the networks (default %(default)s)")
    parser.add_argument("--passes", type=int, default=3, help="passes over the networks (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _run_check(args: argparse.Namespace) -> int:
    """Handler of ``check``: prints whether the table fits (exit 0 either way; JSON ``fits``)."""
    if args.n < 0:
        raise ValueError(f"-n must be >= 0, got {args.n}")
    if args.passes < 1:
        raise ValueError(f"--passes must be >= 1, got {args.passes}")
    table = latency_tables.load(args.table, check_env=False)
    result = check_table(table, networks=args.n, seed=args.seed, passes=args.passes)
    if args.json:
        print_json(result)
    else:
        print(verdict_line(result))
    return 0



# ---------------------------------------------------------------------------------------------
# the sub-commands

def _list(args: argparse.Namespace) -> int:
    records = latency_tables.list_tables()
    if args.json:
        print_json(records)
        return 0

    def fig(r: dict, key: str, fmt: str) -> str:
        v = r.get("validation", {}).get(key)
        return "-" if v is None else format(v, fmt)

    rows = [
        (r["name"], r.get("space") or "-", r.get("resolution", "-"), r.get("device_name", r.get("error", "?")),
         r.get("threads", "-"), r.get("batch_size", "-"), r.get("entries", "-"), r.get("calibration") or "-",
         fig(r, "mape_pct", ".2f"), fig(r, "within_10pct", ".0%"), fig(r, "kendall_tau", ".3f"))
        for r in records
    ]
    cols = ("name", "space", "res", "device", "threads", "batch", "entries", "calibration", "MAPE %",
            "within 10%", "tau")
    print_table(f"litenas latency tables: {len(rows)} shipped", cols, rows)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the ``build``, ``calibrate``, ``validate``, ``adapt``, ``check`` and ``list`` sub-commands
    to ``sub``."""
    commands = (  # name, one line for the list of commands, its module (whose docstring is --help), flags, run
        ("build", "measure every op configuration of a space into a table", build, _build_arguments, _run_build),
        ("calibrate", "fit the overhead term on whole-network measurements", predict, _calibrate_arguments,
         _run_calibrate),
        ("validate", "measure sampled networks and compare with predictions", validate, _validate_arguments,
         _run_validate),
        ("adapt", "refit a table's calibration on networks measured on this device (minutes)", adapt,
         _adapt_arguments, _run_adapt),
        ("check", "does a table still fit this machine? fingerprint, probe, a few networks", check,
         _check_arguments, _run_check),
    )
    for name, summary, module, arguments, run in commands:
        p = sub.add_parser(name, help=summary, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        arguments(p)
        p.set_defaults(func=run)

    p = sub.add_parser("list", help="the shipped latency tables")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_list)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m latency_tables COMMAND ...``."""
    parser = argparse.ArgumentParser(prog="python -m latency_tables",
                                     description="litenas latency tables: build, calibrate, validate, adapt, check, list.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub)
    return _run(parser, argv)


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the sub-command's ``func``; a user error (a bad value or table, a
    file that cannot be read or written) prints one line and returns 2, an interrupt returns 130.
    (``nas latency`` runs under ``nas``'s own handler.)"""
    args = parser.parse_args(argv)
    func = args.func
    try:
        return int(func(args) or 0)
    except (ValueError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
