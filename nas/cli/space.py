"""``nas space``: list the search spaces, show one (skeleton, choices, cardinality), sample from one."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli.output import print_json, print_table

_SHOWN_LABELS = 8  # per choice in the human listing (``--json`` lists them all)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="the search spaces: list, show, sample", description=__doc__)
    ssub = p.add_subparsers(dest="space_command", metavar="ACTION")
    ssub.required = True

    ls = ssub.add_parser("list", help="every space with its number of choices and points",
                         description="Every search space: choices, log10 of its points (all, and core only).")
    ls.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    ls.set_defaults(func=_list)

    show = ssub.add_parser("show", help="one space: skeleton, choices per layer, cardinality, zoo points",
                           description="The skeleton, every choice with its values (* marks core values, "
                                       "the ones sampling draws), the exact number of points, and the zoo "
                                       "networks that are points of the space.")
    show.add_argument("name", help="space name (see `nas space list`)")
    _task_options(show)
    show.add_argument("--json", action="store_true", help="print JSON (every value of every choice)")
    show.set_defaults(func=_show)

    sample = ssub.add_parser("sample", help="random architectures of a space (seeded)",
                             description="K random points of a space, as compact architecture strings "
                                         "or JSON (point, choice labels, hash, architecture).")
    sample.add_argument("name", help="space name (see `nas space list`)")
    sample.add_argument("-n", type=int, default=1, metavar="K", help="how many (default 1)")
    sample.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    _task_options(sample)
    sample.add_argument("--json", action="store_true", help="print a JSON list")
    sample.set_defaults(func=_sample)


def _task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier outputs (default: the space's)")
    p.add_argument("--resolution", type=int, metavar="R",
                   help="input size, for spaces with a fixed one (mobile: restricts its resolution choice)")


def _open(args: argparse.Namespace) -> Any:
    from search_spaces.spaces import get_space

    options = {k: v for k, v in (("num_classes", args.num_classes), ("resolution", args.resolution)) if v is not None}
    return get_space(args.name, **options)


def _list(args: argparse.Namespace) -> int:
    from search_spaces.spaces import get_space, space_names

    records = []
    for name in space_names():
        s = get_space(name)
        records.append({"name": name, "summary": s.summary, "choices": len(s.choices),
                        "log10_size": s.log10_size(), "log10_core_size": s.log10_size(core_only=True)})
    if args.json:
        print_json(records)
        return 0
    rows = [(r["name"], r["choices"], f"{r['log10_size']:.2f}", f"{r['log10_core_size']:.2f}", r["summary"])
            for r in records]
    print_table("litenas search spaces", ("name", "choices", "log10 points", "log10 core", "summary"), rows)
    return 0


def _zoo_points(space: Any) -> list[str]:
    from search_spaces import zoo

    out = []
    for n in zoo.names():
        arch = zoo.get(n)
        if arch.num_classes == space.num_classes and space.contains(arch):
            out.append(n)
    return out


def _show(args: argparse.Namespace) -> int:
    s = _open(args)
    choices = []
    for c in s.choices:
        core = set(c.core)
        choices.append({
            "name": c.name, "doc": c.doc, "values": list(c.labels), "core": [c.labels[i] for i in c.core],
            "parent": c.parent,
            "when": sorted(s.choice(c.parent).labels[i] for i in c.when) if c.parent else [],
            "marked": [("*" if i in core else "") + label for i, label in enumerate(c.labels)],
        })
    size, core_size = s.size(), s.size(core_only=True)
    zoo_points = _zoo_points(s)
    if args.json:
        for c in choices:
            del c["marked"]
        print_json({"name": s.name, "summary": s.summary, "paper": s.paper, "skeleton": s.skeleton(),
                    "choices": choices, "size": size, "log10_size": s.log10_size(), "core_size": core_size,
                    "log10_core_size": s.log10_size(core_only=True), "zoo_points": zoo_points})
        return 0
    print(f"{s.name}: {s.summary}\n{s.paper}\n")
    print("\n".join(s.skeleton()) + "\n")
    rows = []
    for c in choices:
        shown = c["marked"][:_SHOWN_LABELS]
        more = len(c["marked"]) - len(shown)
        cond = f"{c['parent']} in {{{', '.join(c['when'][:4])}{', ...' if len(c['when']) > 4 else ''}}}" \
            if c["parent"] else ""
        rows.append((c["name"], c["doc"], len(c["values"]), ", ".join(shown) + (f", ... (+{more})" if more else ""),
                     cond))
    print_table(f"{len(choices)} choices (* core)", ("choice", "where", "n", "values", "active when"), rows)
    print(f"points: {size} (10^{s.log10_size():.2f}); core only: {core_size} (10^{s.log10_size(core_only=True):.2f})")
    print(f"zoo points ({s.num_classes} classes): {', '.join(zoo_points) or 'none'}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    if args.n < 1:
        raise ValueError(f"-n must be >= 1, got {args.n}")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed must be from 0 to {2**32 - 1}, got {args.seed}")
    s = _open(args)
    rng = np.random.default_rng(args.seed)
    records = []
    for i in range(args.n):
        point = s.sample_point(rng)
        arch = s.decode(point)
        records.append({"index": i, "point": list(point), "choices": s.labels(point), "hash": arch.hash(),
                        "arch": arch.to_dict()})
        if not args.json:
            print(f"# {s.name} sample {i} (seed {args.seed}), hash {arch.hash()}")
            print(arch.to_str(), end="")
    if args.json:
        print_json(records)
    return 0
