"""Record the reference implementations' outputs for ``tests/test_import_weights.py``.

For every zoo entry whose reference is a library (torchvision, timm, pytorchcv), build the
reference model, fill every tensor of its state dict with
``search_spaces.zoo.weights.fill_reference_tensor`` (a function of the key and shape only), run
it in eval mode on ``reference_input`` (a seeded batch of 2 at the entry's resolution) and write
``tests/data/reference_weights/<name>.json``: the reference key list with shapes and dtypes, and
the output logits as little-endian float32 in base64. The tests rebuild the same state dict
without the reference libraries, import it and compare.

The reference libraries need their own virtual environment: torchvision's wheels do not load
with the CPU-only torch build of the project's environment (``operator torchvision::nms does not
exist``) and timm needs torchvision. Make it on the default torch build, bypassing any local
wheel folder or index that pins the CPU build (a large download: torch with its CUDA libraries)::

    python -m venv /work/refvenv
    PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= /work/refvenv/bin/pip install \\
        torch==2.13.0 torchvision==0.28.0 timm pytorchcv

then run, from the repository root (litenas itself comes from the source tree)::

    OMP_NUM_THREADS=1 PYTHONPATH=. /work/refvenv/bin/python scripts/make_reference_fixtures.py [NAME ...]
"""

from __future__ import annotations

import argparse
import base64
import importlib
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.io import atomic_write_json
from search_spaces import zoo
from search_spaces.zoo.weights import reference_model
from search_spaces.zoo.weights.fill import INPUT_BATCH, INPUT_SEED, fill_reference_tensor, reference_input

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "reference_weights"


def library_entries() -> list[str]:
    """Zoo entries whose reference is one of the importable libraries."""
    out = []
    for name in zoo.names():
        try:
            reference_model(name)
        except ValueError:
            continue
        out.append(name)
    return out


def build_reference(source: str, model: str) -> nn.Module:
    """The reference library's model, untrained."""
    if source == "torchvision":
        return getattr(importlib.import_module("torchvision.models"), model)(weights=None)
    if source == "timm":
        return importlib.import_module("timm").create_model(model, pretrained=False)
    if source == "pytorchcv":
        return importlib.import_module("pytorchcv.model_provider").get_model(model, pretrained=False)
    raise ValueError(f"unknown source {source!r}")


def _version(source: str) -> str:
    """The installed version of a source library (its import name is the source's name)."""
    return getattr(importlib.import_module(source), "__version__", "?")


def fixture(name: str) -> dict:
    """The fixture of one zoo entry (see the module docstring)."""
    source, model_name = reference_model(name)
    model = build_reference(source, model_name)
    own = model.state_dict()
    model.load_state_dict({k: fill_reference_tensor(k, v.shape, v.dtype) for k, v in own.items()})
    resolution = zoo.get(name).resolution
    with torch.no_grad():
        logits = model.eval()(reference_input(resolution)).numpy().astype("<f4")
    return {
        "name": name,
        "source": source,
        "model": model_name,
        "library_version": _version(source),
        "torch_version": torch.__version__,
        "input": {"resolution": resolution, "batch": INPUT_BATCH, "seed": INPUT_SEED},
        "keys": [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in own.items()],
        "output": {
            "shape": list(logits.shape),
            "float32_base64": base64.b64encode(np.ascontiguousarray(logits).tobytes()).decode("ascii"),
            "absmax": float(np.abs(logits).max()),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="zoo entries (default: every entry with a library reference)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.names or library_entries():
        data = fixture(name)
        path = atomic_write_json(args.out / f"{name}.json", data)
        print(f"{name}: {data['source']} {data['model']}, {len(data['keys'])} tensors, "
              f"|logits| <= {data['output']['absmax']:.3g} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
