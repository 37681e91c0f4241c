"""``nas zoo``: list the fixed points with their complexity, show one as string or JSON, import a
reference library's pretrained weights into one."""

from __future__ import annotations

import argparse

from nas.cli.output import print_json, print_table
from search_spaces.zoo.weights import SOURCES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="the surveyed networks (fixed points)", description=__doc__)
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    zsub.required = True

    ls = zsub.add_parser("list", help="every entry with params, MACs and the reference match")
    ls.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    ls.add_argument("--no-ptflops", action="store_true", help="skip the (slower) ptflops count")
    ls.set_defaults(func=_list)

    show = zsub.add_parser("show", help="one entry's description (compact string, or JSON)")
    show.add_argument("name", help="zoo entry name (see `nas zoo list`)")
    show.add_argument("--json", action="store_true", help="print the JSON description")
    show.set_defaults(func=_show)

    imp = zsub.add_parser(
        "import-weights", help="a torchvision/timm/pytorchcv checkpoint as a litenas model file",
        description="Map a reference library's state dict (torch.save file, read with weights_only=True, or "
                    ".safetensors when the safetensors package is installed) onto a zoo network, exactly, and "
                    "write a litenas model file (description + weights) for nas.load, `nas train --init` and "
                    "`nas export --weights`.",
    )
    imp.add_argument("name", help="zoo entry name (see `nas zoo list`)")
    imp.add_argument("--source", choices=SOURCES,
                     help="the library the checkpoint comes from (default: the entry's reference)")
    imp.add_argument("--checkpoint", required=True, metavar="FILE", help="the library's state dict")
    imp.add_argument("--out", required=True, metavar="FILE", help="litenas model file to write")
    imp.add_argument("--num-classes", type=int, metavar="N",
                     help="class count of the checkpoint's classifier, where it is not the entry's")
    imp.add_argument("--json", action="store_true", help="print a JSON summary")
    imp.set_defaults(func=_import_weights)


def _list(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nas.complexity import complexity
    from search_spaces import zoo

    records = []
    for name in tqdm(zoo.names(), desc="counting", unit="net", disable=None, leave=False):
        arch = zoo.get(name)
        c = complexity(arch, ptflops=not args.no_ptflops)
        ref = zoo.reference(name)
        macs_err = c.macs_conv_linear / ref["macs_conv_linear"] - 1.0
        records.append({
            "name": name,
            "input": arch.resolution,
            "num_classes": arch.num_classes,
            "params": c.params,
            "macs_conv_linear": c.macs_conv_linear,
            "macs_ptflops": c.macs_ptflops,
            "ref_params": ref["params"],
            "ref_macs_conv_linear": ref["macs_conv_linear"],
            "macs_rel_error": macs_err,
            "match": zoo.matches_reference(name, c.params, c.macs_conv_linear),
            "hash": arch.hash(),
        })
    if args.json:
        print_json(records)
        return 0
    rows = [
        (
            r["name"], r["input"], f"{r['params']:,}", f"{r['ref_params']:,}",
            f"{r['macs_conv_linear'] / 1e6:.1f}M", f"{r['ref_macs_conv_linear'] / 1e6:.1f}M",
            "-" if r["macs_ptflops"] is None else f"{r['macs_ptflops'] / 1e6:.1f}M",
            "yes" if r["match"] else "NO",
        )
        for r in records
    ]
    cols = ("name", "input", "params", "ref params", "MACs", "ref MACs", "ptflops MACs", "match")
    print_table(f"litenas zoo: {len(rows)} fixed points", cols, rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    from search_spaces import zoo

    arch = zoo.get(args.name)
    if args.json:
        print_json(arch.to_dict())
    else:
        print(arch.to_str(), end="")
    return 0


def _import_weights(args: argparse.Namespace) -> int:
    from nas.builder import build_model
    from nas.export.pt import save
    from search_spaces import zoo
    from search_spaces.zoo.weights import import_weights, reference_model

    source = args.source or reference_model(args.name)[0]
    state = import_weights(args.name, source, args.checkpoint, num_classes=args.num_classes)
    arch = zoo.get(args.name)
    if args.num_classes is not None:
        arch = arch.replace(num_classes=args.num_classes)
    model = build_model(arch)
    model.load_state_dict(state)
    path = save(model.eval(), args.out)
    record = {
        "name": args.name, "source": source, "checkpoint": str(args.checkpoint), "out": str(path),
        "num_classes": arch.num_classes, "tensors": len(state),
        "params": sum(p.numel() for p in model.parameters()),
    }
    if args.json:
        print_json(record)
    else:
        print(f"{args.name}: {record['tensors']} tensors ({record['params']:,} parameters) from {source} "
              f"{args.checkpoint} -> {path} (nas.load / nas train --init / nas export --weights)")
    return 0
