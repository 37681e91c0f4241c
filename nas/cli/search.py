"""``nas search``: explore a space under latency constraints; emit new candidates and a report.

Every key of :class:`~nas.search.config.SearchConfig` is a flag (``--max-latency-ms``) and a YAML
key (``max_latency_ms``); ``--config FILE`` reads the YAML and flags given on the command line
override it. Running the same command again resumes the run in ``--out``. With no flags at all it
runs a Pareto search (NSGA-II, 50 candidates) of the ``mobile`` space at 32 px: CIFAR-10 top-1
predicted by the shipped accuracy predictor, latency predicted from the shipped CPU table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from nas.cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    from nas.search.config import KEYS, component_titles

    p = sub.add_parser("search", help="run a search; emits new candidates and a report", description=__doc__)
    p.add_argument("--config", help="YAML file with any of the keys below (flat, or in sections by component)")
    groups = {name: p.add_argument_group(f"{name}: {title}") for name, title in component_titles().items()}
    for key in KEYS.values():
        flag = "--" + key.name.replace("_", "-")
        text = key.help
        if "(default:" not in text and key.default not in (None, False):  # unset and off need no default
            text += f" (default: {key.default})"
        group = groups[key.group]
        if key.kind == "bool":
            group.add_argument(flag, dest=key.name, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        conv: Any = str
        if key.kind in ("int", "float"):
            conv = _number(key)
        group.add_argument(flag, dest=key.name, type=conv, default=None, help=text)
    p.add_argument("--no-zoo", action="store_true", help="do not score the zoo entries for the report")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _number(key: Any) -> Callable[[str], float]:
    """The flag's converter: a number of the key's kind, finite and in its range (the checks of
    :func:`nas.settings.check_range`), so a bad value is refused naming the flag."""
    from nas.settings import check_range

    kind = int if key.kind == "int" else float

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if key.range is not None:
            try:
                check_range(key.name, value, key.range)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


def resolve_config(args: argparse.Namespace) -> Any:
    """The :class:`SearchConfig` of the YAML file (if any) overridden by the given flags. A
    refused value is named by its flag when it came from the command line, else by the file and
    key."""
    from nas.search.config import KEYS, SearchConfig

    data: dict[str, Any] = {}
    if args.config:
        data = SearchConfig.from_yaml(args.config).to_dict()
    flags = {name for name in KEYS if getattr(args, name) is not None}
    data.update({name: getattr(args, name) for name in flags})
    try:
        return SearchConfig.of(**data)
    except ValueError as exc:
        key, _, rest = str(exc).partition(": ")
        if key in flags:
            raise ValueError(f"--{key.replace('_', '-')}: {rest}") from None
        raise ValueError(f"{args.config}: {exc}" if args.config else str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from nas.search.execution import make_executor
    from nas.search.runner import Search

    config = resolve_config(args)
    if args.out is None and not args.quiet:  # a run directory named for its settings: say which
        print(f"nas search: run directory {config.output.out} (the same command resumes it)", file=sys.stderr)
    if config.is_differentiable:  # trains a supernet in its own loop, then judges what it derives
        from nas.search.dnas.search import DNASSearch

        search: Any = DNASSearch.from_config(config)
        state = search.run(progress=not args.quiet)
    else:
        search = Search.from_config(config)
        state = search.run(make_executor(config.executor, search.score.inner), progress=not args.quiet)
    report = search.write_report(compare_zoo=not args.no_zoo, progress=not args.quiet)
    best = search.best()
    summary = {
        "run_dir": str(config.run_dir),
        "report": str(report),
        "evaluated": state.evaluated,
        "infeasible": state.infeasible,
        "duplicates_skipped": state.duplicates,
        "best": None if best is None else {"hash": best.arch.hash(), "metrics": best.metrics,
                                           "values": list(best.values or ())},
        "top": sorted(str(p) for p in (config.run_dir / "top").glob("rank*.json")),
    }
    if args.json:
        print_json(summary)
    else:
        print(f"evaluated {state.evaluated} candidates ({state.infeasible} rejected by constraints, "
              f"{state.duplicates} duplicates reused)")
        if best is not None:
            print(f"best: {best.arch.hash()} " + ", ".join(f"{k}={v:.4g}" for k, v in best.metrics.items()))
        print(f"report: {report}")
    return _no_result(state) if best is None else 0


def _no_result(state: Any) -> int:
    """Exit status 1, with the most common reason, for a search that judged candidates and
    scored none (every one failed): its report ranks nothing."""
    import collections

    reasons = collections.Counter(r.reason for r in state.records if r.state == "failed")
    if not reasons:
        return 0
    reason, n = reasons.most_common(1)[0]
    print(f"nas search: no candidate was scored: all {sum(reasons.values())} failed ({n} with: {reason})",
          file=sys.stderr)
    return 1
