"""Every zoo entry: builds, runs forward and backward, matches its reference counts, round-trips.

Parametrized over :func:`search_spaces.zoo.names`, so a new family is covered as soon as it is
listed in the zoo.
"""

from __future__ import annotations

import re

import pytest
import torch

from nas.arch import Arch, ArchError
from nas.builder import build_model
from nas.complexity import count_macs_conv_linear, count_params
from search_spaces import zoo

NAMES = zoo.names()
# Backward runs at this size at most (an entry whose layout cannot shrink keeps its own).
BACKWARD_RES = 64


@pytest.fixture(scope="module", params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_names_unique_and_documented() -> None:
    assert len(NAMES) == len(set(NAMES))
    for n in NAMES:
        e = zoo.entry(n)
        assert e.name == n and e.paper and e.reference


def test_unknown_entry_lists_known() -> None:
    with pytest.raises(ValueError, match="known: .*mobilenet_v2_100"):
        zoo.entry("no_such_net")


def test_forward_shape_and_finite(name: str) -> None:
    arch = zoo.get(name)
    ref = zoo.reference(name)
    assert (arch.resolution, arch.num_classes) == (ref["input"], ref["num_classes"])
    torch.manual_seed(0)
    model = build_model(arch).eval()
    with torch.no_grad():
        y = model(torch.randn(2, arch.in_chans, arch.resolution, arch.resolution))
    assert y.shape == (2, arch.num_classes)
    assert torch.isfinite(y).all()


def test_backward_reaches_every_parameter(name: str) -> None:
    arch = zoo.get(name)
    if arch.resolution > BACKWARD_RES:
        try:
            arch = arch.replace(resolution=BACKWARD_RES)
        except ArchError:
            pass
    torch.manual_seed(0)
    model = build_model(arch).train()
    y = model(torch.randn(2, arch.in_chans, arch.resolution, arch.resolution))
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_matches_reference_counts(name: str) -> None:
    arch = zoo.get(name)
    ref = zoo.reference(name)
    p_tol, m_tol = zoo.tolerance(name)
    model = build_model(arch)
    params = count_params(model)
    macs = count_macs_conv_linear(model, (arch.in_chans, arch.resolution, arch.resolution))
    assert abs(params - ref["params"]) <= p_tol * ref["params"], (params, ref["params"])
    assert abs(macs - ref["macs_conv_linear"]) <= m_tol * ref["macs_conv_linear"], (macs, ref["macs_conv_linear"])
    assert zoo.matches_reference(name, params, macs)


def test_round_trips_and_stable_hash(name: str) -> None:
    arch = zoo.get(name)
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_str(arch.to_str()) == arch
    h = arch.hash()
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert zoo.entry(name).build().hash() == h  # a fresh build describes the same network
    assert Arch.from_json(arch.to_json()).hash() == h
    assert Arch.from_str(arch.to_str()).hash() == h
