"""``nas train``: train an architecture on a dataset into a run directory.

ARCH is an architecture file (JSON or compact form, e.g. a search's OUT/top/rank01_<hash>.json)
or a zoo name. The recipe (every flag below from --epochs to --eval-batch-size) is written to
OUT/config.json; by default: 30 epochs, batch 128, SGD with Nesterov momentum 0.9, peak lr 0.1
after a 5% linear warm-up then cosine decay to 0, weight decay 5e-4 on conv/linear weights only,
label smoothing 0.1, random crop (4 px zero padding; random-resized crop for streamed folders) and
horizontal flip; TrivialAugment, Cutout and a weight EMA are options. The test split is evaluated
after every epoch (top-1, top-5, loss). OUT gets metrics.json, curve.png, weights.pt (last epoch)
and best.pt (best test top-1), both loadable with torch.load(weights_only=True) and by
`nas export --weights`. Killed and started again with the same command, a run resumes after its
last finished epoch and ends with the same weights.

Fine-tuning: --init WEIGHTS loads a litenas weights file; --init-from SOURCE inherits what
corresponds from another trained network (a searched network from a fixed point: same ops at the
same stage and position, cut to this network's width and kernels as Once-for-All cuts a
sub-network, and reports how many parameters it inherited); --num-classes N gives a new classifier
for N classes; --freeze features trains the classifier only; --backbone-lr-scale 0.1 trains the
rest ten times slower. Execution: --device cpu|cuda|cuda:N|mps; --precision auto picks bf16/fp16
autocast on GPUs and bf16 on CPUs with native bf16 for >= 128 px networks, --memory-format auto
picks channels_last
(--precision fp32 --memory-format contiguous force the plain path).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from nas.cli.output import print_json

DEFAULT_EPOCHS = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an architecture on a dataset (resumable)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", metavar="ARCH", help="architecture file or zoo name")
    p.add_argument("--data", required=True,
                   help="dataset: image folders (train/<class>/, test/<class>/), a .tar.gz of them, CIFAR pickles, "
                        "Fashion-MNIST idx files, or 'synthetic'")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="run directory (re-run to resume)")
    add_recipe_flags(p, DEFAULT_EPOCHS)
    tune = p.add_argument_group("fine-tuning")
    tune.add_argument("--init", metavar="WEIGHTS", help="start from these weights (a litenas weights file)")
    tune.add_argument("--init-from", metavar="SOURCE",
                      help="inherit every tensor whose layer and shape correspond from another trained network "
                           "(a litenas model file or a `nas train` run directory): channel slices where this "
                           "network is narrower, centred kernels where smaller (Once-for-All); the rest starts "
                           "fresh")
    tune.add_argument("--num-classes", type=int, help="train a new classifier for N classes")
    data = p.add_argument_group("data")
    data.add_argument("--train-per-class", type=int, help="train on a class-balanced subset of N images per class")
    data.add_argument("--test-per-class", type=int, help="test on a class-balanced subset of N images per class")
    data.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                      help="stream an image folder from disk (default: when it would not fit in a quarter of the "
                           "memory or its images are not the architecture's size)")
    data.add_argument("--workers", type=int, default=2, help="data-loading processes when streaming (default: 2)")
    add_execution_flags(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def add_recipe_flags(p: argparse.ArgumentParser, default_epochs: int) -> None:
    """One flag per :class:`TrainConfig` field but ``steps`` (a run counts epochs)."""
    from evaluators.training.recipe import TrainConfig

    recipe = p.add_argument_group("recipe (written to OUT/config.json)")
    helps = TrainConfig.field_help()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "steps":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = default_epochs if f.name == "epochs" else f.default
        kind = str(f.type)
        if kind == "bool":
            recipe.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{helps[f.name]} (default: {default})")
            continue
        conv: Any = int if kind.startswith("int") else float if kind.startswith("float") else str
        recipe.add_argument(flag, dest=f.name, type=_optional(conv) if "None" in kind else conv, default=default,
                            help=f"{helps[f.name]} (default: {default})")


def recipe_from_args(args: argparse.Namespace) -> Any:
    """The :class:`TrainConfig` of the recipe flags."""
    from evaluators.training.recipe import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "steps"})


def add_execution_flags(p: argparse.ArgumentParser) -> None:
    """--device, --precision, --memory-format, --compile, --threads."""
    from evaluators.training.plan import MEMORY_FORMATS, PRECISIONS

    run = p.add_argument_group("execution (may change between a run and its resumption)")
    run.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default: cpu)")
    run.add_argument("--precision", default="auto", choices=PRECISIONS,
                     help="autocast dtype (default auto: bf16/fp16 on GPUs; on CPUs bf16 for >= 128 px networks where the "
                          "CPU has native bf16, else fp32)")
    run.add_argument("--memory-format", default="auto", choices=MEMORY_FORMATS,
                     help="tensor layout (default auto: channels_last on CPU and CUDA)")
    run.add_argument("--compile", action="store_true", help="torch.compile the network (compile time is paid up front; scripts/bench_train.py --compile "
                          "measures the break-even)")
    run.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")


def _optional(conv: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "off") else conv(text)

    parse.__name__ = conv.__name__
    return parse


def _run(args: argparse.Namespace) -> int:
    from nas.train import train

    recipe = recipe_from_args(args)
    summary = train(args.arch, args.data, args.out, recipe, device=args.device, precision=args.precision,
                    memory_format=args.memory_format, compile=args.compile, threads=args.threads,
                    workers=args.workers, stream=args.stream, init=args.init, init_from=args.init_from,
                    num_classes=args.num_classes,
                    train_per_class=args.train_per_class, test_per_class=args.test_per_class,
                    progress=not args.quiet)
    if args.json:
        print_json(summary)
        return 0
    final, best = summary["final"], summary["best"]
    if "init_from" in summary:
        got = summary["init_from"]
        print(f"inherited {got['params_inherited']:,} of {got['params_total']:,} parameters "
              f"({100 * got['fraction']:.1f}%) from {got['path']}")
    print(f"trained {summary['arch_hash']} for {summary['epochs_done']}/{summary['epochs']} epochs "
          f"({summary['train_seconds']:.0f} s of training, {summary['median_images_per_s']:.0f} images/s, "
          f"{summary['plan']['device']} {summary['plan']['precision']} {summary['plan']['memory_format']})")
    print(f"last epoch: test top-1 {final['test_top1']:.2f}%, top-5 {final['test_top5']:.2f}%, "
          f"loss {final['test_loss']:.4f} -> {summary['weights']}")
    print(f"best epoch {best['epoch'] + 1}: test top-1 {best['test_top1']:.2f}% -> {summary['best_weights']}")
    return 0
