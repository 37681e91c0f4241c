"""``nas zoo``: list the fixed points with their complexity, show one as string or JSON."""

from __future__ import annotations

import argparse

from nas.cli.output import print_json, print_table


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
