"""``nas export``: write an architecture as a PyTorch model (pt, TorchScript, ONNX or a
standalone Python file), checked against the module it was built as."""

from __future__ import annotations

import argparse

from nas.cli.output import print_json

_FORMAT_HELP = (
    "pt: description + state dict in one file (read back with nas.load); "
    "torchscript: runs with torch.jit.load alone; onnx: fixed opset, checked with onnxruntime "
    "when installed; py: standalone torch-only source, weights saved beside it as .pt"
)


def register(sub: argparse._SubParsersAction) -> None:
    from nas.export import FORMATS
    from nas.onnx_graph import MAX_OPSET, MIN_OPSET, OPSET

    p = sub.add_parser("export", help="export an architecture as a PyTorch model", description=__doc__)
    p.add_argument("arch", metavar="ARCH", help="architecture file (JSON or compact string form)")
    p.add_argument("--format", "-f", required=True, choices=FORMATS, help=_FORMAT_HELP)
    p.add_argument("--out", "-o", required=True, metavar="PATH", help="file to write (py: must end in .py)")
    p.add_argument("--weights", "-w", metavar="CKPT",
                   help="state dict file (plain or a litenas .pt) to load; default: fresh initialisation")
    p.add_argument("--opset", type=_opset, default=OPSET, help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {OPSET})")
    p.add_argument("--no-check", action="store_true",
                   help="skip reading the export back and comparing its output with the module's")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a line")
    p.set_defaults(func=_export)


def _opset(text: str) -> int:
    """``--opset``'s converter: an integer the exporter supports (refused naming the flag)."""
    from nas.onnx_graph import check_opset

    try:
        opset = int(text)
        check_opset(opset)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1] if "opset" in str(exc) else
                                         f"expected an integer, got {text!r}") from None
    return opset


def _export(args: argparse.Namespace) -> int:
    from nas.arch import Arch
    from nas.builder import check_size
    from nas.export import export

    arch = Arch.load(args.arch)
    try:
        check_size(arch)
    except ValueError as exc:
        raise ValueError(f"{args.arch}: {exc}") from None
    result = export(arch, args.format, args.out, weights=args.weights, check=not args.no_check, opset=args.opset)
    if args.json:
        print_json(result.to_dict())
        return 0
    extra = {"script": " (scripted)", "trace": " (traced)"}.get(result.method or "", "")
    extra += f" (opset {result.opset})" if result.opset else ""
    if result.max_abs_diff is None:
        checked = "not checked" + (" (onnxruntime is not installed)" if args.format == "onnx" and not args.no_check
                                   else "")
    else:
        checked = f"max |diff| vs the module {result.max_abs_diff:.2g} ({result.checked_with})"
    print(f"wrote {', '.join(str(f) for f in result.files)}: {args.format}{extra}, arch {result.arch_hash}, "
          f"{result.params:,} params, weights: {result.weights}; {checked}")
    return 0
