"""``nas predictor``: collect networks trained stand-alone into a dataset, fit an accuracy
predictor on it, and rank candidates with it (``nas search --evaluator predictor --predictor FILE``).

  nas predictor collect runs/net1 runs/net2 ... --into nets.json   (finished `nas train` runs)
  nas predictor fit nets.json --space mobile --resolution 32 --out predictor.json
  nas predictor list                                               (the shipped predictors)
"""

from __future__ import annotations

import argparse

from nas.cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    from evaluators.predictor import MODELS

    p = sub.add_parser("predictor", help="fit an accuracy predictor on trained networks", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    c = verbs.add_parser("collect", help="add finished `nas train` runs to a trained-networks file")
    c.add_argument("runs", nargs="+", metavar="RUN_DIR", help="`nas train` run directories")
    c.add_argument("--into", required=True, metavar="NETS", help="trained-networks JSON file (created if absent)")
    c.add_argument("--json", action="store_true", help="print a JSON summary")
    c.set_defaults(func=_collect)
    f = verbs.add_parser("fit", help="fit a predictor (ridge | gbm | mlp, the best cross-validated Kendall tau)")
    f.add_argument("nets", metavar="NETS", help="trained-networks JSON file")
    f.add_argument("--space", required=True, help="search space the predictor encodes (`nas space list`)")
    f.add_argument("--resolution", type=int, help="input size of the space (default: the networks')")
    f.add_argument("--data", metavar="FINGERPRINT",
                   help="fit on the networks trained on this dataset fingerprint (default: the only one)")
    f.add_argument("--models", default=",".join(MODELS), help=f"comma-separated kinds to try (default {','.join(MODELS)})")
    f.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    f.add_argument("--seed", type=int, default=0, help="seed of the folds and the models (default 0)")
    f.add_argument("--out", "-o", required=True, metavar="FILE", help="predictor file to write (JSON)")
    f.add_argument("--json", action="store_true", help="print a JSON summary")
    f.set_defaults(func=_fit)
    ls = verbs.add_parser("list", help="the shipped predictors (use by name: --predictor NAME)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from evaluators.predictor import Predictor, shipped_predictors

    rows = []
    for name in shipped_predictors():
        p = Predictor.load(name)
        rows.append({"name": name, "space": p.space, "resolution": p.resolution, "classes": p.num_classes,
                     "data": p.data.get("fingerprint"), "networks": p.n, "model": p.model["name"],
                     "cv_kendall_tau": p.cv[p.model["name"]]})
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']}: {r['space']}@{r['resolution']}, {r['classes']} classes, fitted on {r['networks']} trained "
              f"networks (data {r['data']}), {r['model']}, cross-validated Kendall tau {r['cv_kendall_tau']:+.3f}")
    if not rows:
        print("no shipped predictors")
    return 0


def _collect(args: argparse.Namespace) -> int:
    from evaluators.trained_nets import TrainedNets, record_from_run

    nets = TrainedNets(args.into)
    added = []
    for run in args.runs:
        rec = record_from_run(run)
        nets.add(rec)
        added.append({"run": run, "arch_hash": rec.arch_hash, "top1": rec.top1})
    if args.json:
        print_json({"into": args.into, "added": added, "records": len(nets)})
    else:
        print(f"added {len(added)} networks to {args.into} ({len(nets)} records)")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from evaluators.predictor import fit_predictor
    from evaluators.trained_nets import TrainedNets
    from search_spaces.spaces import get_space

    nets = TrainedNets(args.nets)
    if not len(nets):
        raise ValueError(f"{args.nets}: no trained networks")
    prints = sorted({r.data["fingerprint"] for r in nets})
    if args.data is None and len(prints) > 1:
        raise ValueError(f"{args.nets} holds networks of {len(prints)} datasets ({', '.join(prints)}); pick one with --data")
    records = nets.select(data_fingerprint=args.data or prints[0])
    if not records:
        raise ValueError(f"--data {args.data}: no networks trained on it (datasets: {', '.join(prints)})")
    first = records[0].to_arch()
    space = get_space(args.space, resolution=args.resolution or first.resolution, num_classes=first.num_classes)
    for r in records:
        try:
            space.encode(r.to_arch())
        except ValueError as exc:
            raise ValueError(f"{args.nets}: network {r.arch_hash} is not in space {args.space!r} ({exc})") from None
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    predictor = fit_predictor(records, space, models=models, folds=args.folds, seed=args.seed)
    predictor.save(args.out)
    summary = {"out": args.out, "model": predictor.model["name"], "n": predictor.n,
               "cv_kendall_tau": predictor.cv}
    if args.json:
        print_json(summary)
    else:
        taus = ", ".join(f"{k} {v:+.3f}" for k, v in predictor.cv.items())
        print(f"fitted {predictor.model['name']} on {predictor.n} networks ({args.folds}-fold Kendall tau: {taus}) "
              f"-> {args.out}")
    return 0
