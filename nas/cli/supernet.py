"""``nas supernet train``: train a weight-sharing supernet of a layer-wise space (fbnet, or the
layer templates of mobile) once; then `nas search --evaluator supernet --supernet OUT` scores
candidates by their inherited weights after BatchNorm re-calibration, for any latency target or
table ("train once, search for every device"). mnasnet and hardnet have no layer-wise view: their
stages change depth and width with the choices, so no fixed set of shared layers holds them.

Each step trains one uniformly drawn path (Single-Path One-Shot, Guo et al. ECCV 2020), or with
--sandwich the largest, the smallest and --randoms random paths, the smaller ones distilled from
the largest (--distill; Once-for-All, BigNAS). Resumable like `nas train` (same recipe flags).
"""

from __future__ import annotations

import argparse

from nas.cli.output import print_json
from nas.cli.train import add_execution_flags, add_recipe_flags, recipe_from_args

DEFAULT_EPOCHS = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supernet", help="train a weight-sharing supernet (then: search --evaluator supernet)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    t = verbs.add_parser("train", help="train a supernet into a run directory (resumable)", description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--space", required=True, help="fbnet | mobile (layer-wise spaces)")
    t.add_argument("--resolution", type=int, required=True, help="input size")
    t.add_argument("--num-classes", type=int, default=10, help="classes of the data (default 10)")
    t.add_argument("--data", required=True, help="dataset (as for `nas train`)")
    t.add_argument("--out", "-o", required=True, metavar="DIR", help="run directory (re-run to resume)")
    t.add_argument("--sandwich", action=argparse.BooleanOptionalAction, default=True,
                   help="largest + smallest + random paths per step (default: on)")
    t.add_argument("--randoms", type=int, default=2, help="random paths per step with --sandwich (default 2)")
    t.add_argument("--distill", action=argparse.BooleanOptionalAction, default=True,
                   help="in-place distillation from the largest path (default: on, with --sandwich)")
    t.add_argument("--train-per-class", type=int, help="train on N images per class")
    t.add_argument("--holdout-per-class", type=int,
                   help="images per class held out of training; searches rank on them (default: a tenth of the "
                        "smallest class, as a search's --test-per-class)")
    t.add_argument("--holdout-seed", type=int, default=0, help="seed of the held-out draw (default 0)")
    t.add_argument("--workers", type=int, default=2, help="data-loading processes when streaming (default: 2)")
    add_recipe_flags(t, DEFAULT_EPOCHS)
    add_execution_flags(t)
    t.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from evaluators.datasets import Holdout
    from nas.train.supernet import train_supernet

    if args.holdout_per_class is not None and args.holdout_per_class < 1:
        raise ValueError(f"--holdout-per-class must be >= 1, got {args.holdout_per_class}")

    summary = train_supernet(args.space, args.resolution, args.data, args.out, recipe_from_args(args),
                             num_classes=args.num_classes, sandwich=args.sandwich, randoms=args.randoms,
                             distill=args.distill, device=args.device, precision=args.precision,
                             memory_format=args.memory_format, compile=args.compile, threads=args.threads,
                             workers=args.workers, train_per_class=args.train_per_class,
                             holdout=Holdout(args.holdout_per_class, args.holdout_seed), progress=not args.quiet)
    if args.json:
        print_json(summary)
    else:
        print(f"supernet of {args.space}@{args.resolution}: {summary['epochs_done']}/{summary['epochs']} epochs "
              f"({summary['train_seconds']:.0f} s), weights in {summary['weights']}; score candidates with "
              f"`nas search --space {args.space} --resolution {args.resolution} --evaluator supernet "
              f"--supernet {args.out} ...`")
    return 0
