"""``nas search``: explore a space under latency constraints; emit new candidates and a report.

Every key of :class:`~nas.search.config.SearchConfig` is a flag (``--max-latency-ms``) and a YAML
key (``max_latency_ms``); ``--config FILE`` reads the YAML and flags given on the command line
override it. Running the same command again resumes the run in ``--out``. With no flags at all it
runs a Pareto search (NSGA-II, 50 candidates) of the ``mobile`` space at 32 px: CIFAR-10 top-1
predicted by the shipped accuracy predictor, latency predicted from the shipped CPU table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from nas.cli.output import print_json

_HELP = {
    "space": "search space (see `nas space list`)",
    "resolution": "input size (default: the latency table's)",
    "strategy": "random | evolution | tpe | nsga2 (ask/tell) | fbnet | proxyless (differentiable, supernet) | "
                "nni-evolution | nni-random (NNI 3.0's, needs the litenas[nni] extra) (default: evolution for the "
                "reward objective, nsga2 for a Pareto front)",
    "budget": "number of candidates to evaluate (ask/tell strategies; fbnet/proxyless judge 1 + --dnas-samples)",
    "time_limit_s": "stop starting new evaluations after this many seconds",
    "seed": "seed of the strategy and evaluators",
    "out": "run directory (re-run the same command to resume) (default: runs/SPACE-STRATEGY-EVALUATOR-DIGEST, the "
           "digest of the settings that define the search: the same command resumes its run, other settings start "
           "their own)",
    "storage": "Optuna storage URL (default: sqlite:///OUT/study.db)",
    "latency_table": "latency table file or shipped name (`nas latency list`) (default: the shipped CPU table of "
                     "--space, SPACE_RESOLUTION_cpu, when there is one)",
    "measure_missing": "measure ops missing from the latency table on this device instead of failing",
    "evaluator": "proxy (zero-cost, seconds) | train (short training) | predictor (an accuracy predictor fitted "
                 "on trained networks, milliseconds; see `nas predictor`) | supernet (inherited weights of a trained "
                 "supernet; see `nas supernet`) (default: the one --predictor, --supernet or --proxy/--data imply; "
                 "with none of them, predictor when a shipped predictor covers --space, else proxy)",
    "predictor": "accuracy predictor for --evaluator predictor: a file (`nas predictor fit`) or a shipped name "
                 "(`nas predictor list`) (default: the shipped predictor of --space at --resolution)",
    "supernet": "`nas supernet train` directory for --evaluator supernet: candidates are scored by inherited weights "
                "after BatchNorm re-calibration, and the search runs over the supernet's part of the space",
    "proxy": "zero-cost proxy for --evaluator proxy: naswot | synflow | grad_norm | snip (default: naswot)",
    "data": "'none' (data-free proxies: synflow), 'synthetic' (random images: smoke tests only), or a dataset path "
            "(image folders, .tar.gz, CIFAR pickles, Fashion-MNIST) (default: none with --evaluator predictor, which "
            "reads no images, else synthetic)",
    "train_epochs": "epochs per candidate with --evaluator train",
    "train_per_class": "training images per class taken from the dataset (after the held-out split)",
    "test_per_class": "images per class split off the training set to rank candidates (the test set is never "
                      "used by a search; with --evaluator supernet, drawn from the images it held out) "
                      "(default: a tenth of the smallest class)",
    "batch_size": "minibatch size (proxy batch, training batch)",
    "objective": "reward (MnasNet ACC*(LAT/T)^w) | pareto (metric vs latency) (default: reward with a latency "
                 "target, --max-latency-ms or --target-latency-ms; pareto without one)",
    "max_latency_ms": "hard limit on predicted latency; also the reward target unless --target-latency-ms",
    "target_latency_ms": "the reward's latency target T",
    "reward_w": "the reward exponent w (soft constraint, MnasNet: -0.07)",
    "hard_reward": "use the reward's hard form (alpha=0, beta=-1)",
    "max_params": "hard limit on parameters",
    "max_macs": "hard limit on conv+linear MACs",
    "population": "population size (evolution, nsga2)",
    "sample_size": "tournament size (evolution)",
    "start_from": "warm start: comma-separated zoo names or architecture files (JSON or string form), points of "
                  "the space, that the search evaluates first; evolution then mutates the best of them (e.g. the "
                  "fixed point a search should beat)",
    "top_k": "number of new candidates written to OUT/top/",
    "threads": "torch CPU threads per evaluation",
    "executor": "inprocess | ray",
    "ray_address": "Ray cluster address (auto | HOST:PORT); none starts a local instance",
    "workers": "concurrent evaluations (ray executor)",
    "num_cpus": "CPUs per evaluation (ray executor)",
    "num_gpus": "GPUs per evaluation (ray executor)",
    "device": "torch device of every evaluation and of a fbnet/proxyless supernet: cpu | cuda | cuda:N | mps "
              "(default: cuda when --num-gpus > 0 under --executor ray, else cpu)",
    "eval_timeout_s": "a candidate running longer fails (ray executor)",
    "max_retries": "re-submissions of an evaluation whose worker died (ray executor)",
    "dnas_epochs": "supernet training epochs, warm-up included (fbnet, proxyless); raise it and re-run to train on",
    "dnas_warmup_epochs": "first epochs that train the supernet weights only (fbnet, proxyless)",
    "dnas_loss": "relative (CE + alpha*(LAT/LAT_ref)^beta, LAT_ref the space's mean latency: any latency scale) | "
                 "mult (FBNet: CE*alpha*log(LAT)^beta, every LAT > 1 ms) | add (CE + alpha*LAT^beta); LAT in ms "
                 "(fbnet, proxyless)",
    "dnas_alpha": "weight of the latency term (relative: nats of CE per space-mean latency) (fbnet, proxyless)",
    "dnas_beta": "exponent of the latency term (FBNet's mult: 0.6) (fbnet, proxyless)",
    "dnas_temperature": "Gumbel-softmax temperature of the first epoch (FBNet: 5.0) (fbnet, proxyless)",
    "dnas_temperature_decay": "temperature factor per epoch (FBNet: 0.956) (fbnet, proxyless)",
    "dnas_weight_lr": "peak SGD learning rate of the supernet weights, cosine decay (fbnet, proxyless)",
    "dnas_arch_lr": "Adam learning rate of the architecture parameters (FBNet: 0.01) (fbnet, proxyless)",
    "dnas_arch_split": "fraction of the training images that train the architecture parameters (fbnet, proxyless)",
    "dnas_samples": "architectures sampled from the learned distribution besides the argmax (FBNet: 6)",
}


def register(sub: argparse._SubParsersAction) -> None:
    from nas.search.config import SearchConfig

    p = sub.add_parser("search", help="run a search; emits new candidates and a report", description=__doc__)
    p.add_argument("--config", help="YAML file with any of the keys below")
    for f in dataclasses.fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        text = _HELP[f.name]
        if "(default:" not in text and f.default not in (None, False):  # unset and off need no default
            text += f" (default: {f.default})"
        if kind == "bool":
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        conv: Any = str
        if kind.startswith(("int", "float")):
            conv = _number(f.name, int if kind.startswith("int") else float)
        p.add_argument(flag, dest=f.name, type=conv, default=None, help=text)
    p.add_argument("--no-zoo", action="store_true", help="do not score the zoo entries for the report")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _number(name: str, kind: type) -> Callable[[str], float]:
    """The flag's converter: ``kind`` of the text, finite and in the key's range (the checks of
    :func:`nas.search.config.check_range`), so a bad value is refused naming the flag."""
    from nas.search.config import RANGES, check_range

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if name in RANGES:
            try:
                check_range(name, value)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


def resolve_config(args: argparse.Namespace) -> Any:
    """The :class:`SearchConfig` of the YAML file (if any) overridden by the given flags. A
    refused value is named by its flag when it came from the command line, else by the file and
    key."""
    from nas.search.config import SearchConfig

    data: dict[str, Any] = {}
    if args.config:
        data = SearchConfig.from_yaml(args.config).to_dict()
    flags = {f.name for f in dataclasses.fields(SearchConfig) if getattr(args, f.name) is not None}
    data.update({name: getattr(args, name) for name in flags})
    try:
        return SearchConfig(**data)
    except ValueError as exc:
        key, _, rest = str(exc).partition(": ")
        if key in flags:
            raise ValueError(f"--{key.replace('_', '-')}: {rest}") from None
        raise ValueError(f"{args.config}: {exc}" if args.config else str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from nas.search.config import DNAS_STRATEGIES
    from nas.search.execution import make_executor
    from nas.search.runner import Search

    config = resolve_config(args)
    if args.out is None and not args.quiet:  # a run directory named for its settings: say which
        print(f"nas search: run directory {config.out} (the same command resumes it)", file=sys.stderr)
    if config.strategy in DNAS_STRATEGIES:  # trains a supernet in its own loop, then judges what it derives
        from nas.search.dnas.search import DNASSearch

        search: Any = DNASSearch.from_config(config)
        state = search.run(progress=not args.quiet)
    else:
        search = Search.from_config(config)
        state = search.run(make_executor(config, search.score.inner), progress=not args.quiet)
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
