"""The FBNet search space (Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via
Differentiable Neural Architecture Search", CVPR 2019, Table 1 and Table 2).

A fixed macro skeleton: a 3x3 stride-2 conv stem with 16 channels, 22 searched layers in seven
stages of depth ``[1, 4, 4, 4, 4, 4, 1]``, widths ``[16, 24, 32, 64, 112, 184, 352]`` and
first-layer strides ``[1, 2, 2, 2, 1, 2, 1]``, then a 1x1 conv to 1984 channels, average pool
and a linear classifier. Each layer picks one of nine candidates, in this index order:

``k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip``

``kK_eE`` is an inverted residual (op ``ir``) with a KxK depthwise conv and expansion E (an
expansion of 1 keeps its 1x1 expansion conv, as FBNet's ``IRFBlock``), ReLU, no squeeze-excite;
``_g2`` makes both 1x1 convs 2-group convs with a channel shuffle after the first. ``skip`` is the
``skip`` op: FBNet's builder (mobile-vision / maskrcnn-benchmark ``Identity``) makes it the
identity where the layer keeps its shape and a 1x1 conv-BN-ReLU projection where the channels or
the stride change. The first layer of a stage may be ``skip`` too: the search runs over all 22
layers alike, and the published FBNet-A takes ``skip`` as its very first layer. So every layer
has all nine candidates and the space has exactly ``9**22`` points, all distinct networks.

FBNet-C (zoo ``fbnet_c``, with the ``skip`` in the second layer of the 24-channel stage that
mobile-vision's ``fbnet_c`` lists) is a point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nas.arch import Arch, Block
from search_spaces.layerwise import layerwise_view
from search_spaces.registry import OpConfig
from search_spaces.space import Choice, LayerwisePart, SearchSpace, check_fixed, describe_block
from search_spaces.stems import stem_block

__all__ = ["CANDIDATES", "STAGES", "FBNetSpace"]

# (depth, width, first stride) per stage, Table 1 of the paper.
STAGES: tuple[tuple[int, int, int], ...] = (
    (1, 16, 1), (4, 24, 2), (4, 32, 2), (4, 64, 2), (4, 112, 1), (4, 184, 2), (1, 352, 1),
)
STEM_CHS = 16
HEAD_CHS = 1984

# Candidate name -> (op, arguments other than out_chs and stride), Table 2 of the paper.
_G2 = {"exp_groups": 2, "proj_groups": 2, "shuffle": True}
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "k3_e1": ("ir", {"kernel": 3, "exp_ratio": 1}),
    "k3_e1_g2": ("ir", {"kernel": 3, "exp_ratio": 1, **_G2}),
    "k3_e3": ("ir", {"kernel": 3, "exp_ratio": 3}),
    "k3_e6": ("ir", {"kernel": 3, "exp_ratio": 6}),
    "k5_e1": ("ir", {"kernel": 5, "exp_ratio": 1}),
    "k5_e1_g2": ("ir", {"kernel": 5, "exp_ratio": 1, **_G2}),
    "k5_e3": ("ir", {"kernel": 5, "exp_ratio": 3}),
    "k5_e6": ("ir", {"kernel": 5, "exp_ratio": 6}),
    "skip": ("skip", {}),
}


def _layers() -> list[tuple[int, int, int, int, int]]:
    """(stage, position, in channels, out channels, stride) of the 22 searched layers."""
    out, in_chs = [], STEM_CHS
    for s, (depth, width, stride) in enumerate(STAGES):
        for j in range(depth):
            out.append((s, j, in_chs, width, stride if j == 0 else 1))
            in_chs = width
    return out


class FBNetSpace(SearchSpace):
    """FBNet's layer-wise space: 22 layers x 9 candidates.

    Args:
        resolution: input size of every point (224 in the paper).
        num_classes: classifier outputs.
        dropout: before the classifier (0.2, as the zoo's ``fbnet_c``).
    """

    name = "fbnet"
    summary = "FBNet: 22 layers x 9 candidates (k3/k5, e1/e3/e6, grouped e1, skip)"
    paper = ("Wu et al., FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural "
             "Architecture Search, CVPR 2019")

    def __init__(self, *, resolution: int = 224, num_classes: int = 1000, dropout: float = 0.2):
        self.resolution, self.num_classes, self.dropout = resolution, num_classes, dropout
        self._layers = _layers()
        names = tuple(CANDIDATES)
        super().__init__([
            Choice(f"layer{i}", names, doc=f"stage {s}, layer {j}: {cin}->{cout} ch, stride {st}")
            for i, (s, j, cin, cout, st) in enumerate(self._layers)
        ])
        # Every block each layer can take, and the stem and head every point shares.
        self._blocks = [
            [Block.make(op, {**args, "out_chs": cout, "stride": st}) for op, args in CANDIDATES.values()]
            for _, _, _, cout, st in self._layers
        ]
        self._stem = stem_block("conv", STEM_CHS)
        self._head = Block.make("hc", out_chs=HEAD_CHS, act="relu", dropout=dropout)
        Arch(resolution, num_classes, self._stem, (), self._head)  # reject bad arguments up front

    def _decode(self, values: Mapping[str, Any]) -> Arch:
        names = tuple(CANDIDATES)
        blocks = tuple(self._blocks[i][names.index(values[f"layer{i}"])] for i in range(len(self._layers)))
        return Arch(self.resolution, self.num_classes, self._stem, blocks, self._head)

    def _encode(self, arch: Arch) -> dict[str, int]:
        check_fixed(self.name, arch, resolution=self.resolution, num_classes=self.num_classes, in_chans=3,
                    stem=self._stem, head=self._head)
        if len(arch.blocks) != len(self._layers):
            raise ValueError(f"{self.name}: expected {len(self._layers)} blocks (one per layer), got {len(arch.blocks)}")
        out = {}
        for i, block in enumerate(arch.blocks):
            try:
                out[f"layer{i}"] = self._blocks[i].index(block)
            except ValueError:
                raise ValueError(f"{self.name}: {self.choices[i].where}: block {describe_block(block)} "
                                 f"is not one of the candidates {', '.join(CANDIDATES)}") from None
        return out

    def _at(self, resolution: int | None) -> FBNetSpace:
        """This space with input ``resolution`` (itself for ``None`` or its own)."""
        return self if resolution in (None, self.resolution) else FBNetSpace(
            resolution=resolution, num_classes=self.num_classes, dropout=self.dropout)

    def op_configs(self, resolution: int | None = None, *, core_only: bool = False) -> list[OpConfig]:
        space = self._at(resolution)
        configs: set[OpConfig] = set()
        for k in range(len(CANDIDATES)):  # a layer's input shape does not depend on the choices
            configs.update(space.decode((k,) * len(self._layers)).op_configs())
        return sorted(configs, key=OpConfig.key)

    def min_cost(self, cost: Callable[[OpConfig], float], resolution: int | None = None, *,
                 core_only: bool = False) -> float:
        """The least total per-op cost of a point: every layer at its cheapest candidate
        (:meth:`~search_spaces.layerwise.LayerwiseView.min_cost`)."""
        return layerwise_view(self._at(resolution)).min_cost(cost)

    def layerwise_part(self) -> LayerwisePart:
        """The whole space: every one of the 22 layers over its 9 candidates."""
        names = tuple(c.name for c in self.choices)
        return LayerwisePart((0,) * len(names), names, tuple(tuple(self.choice(c).core) for c in names),
                             f"the whole fbnet space: {len(names)} layers x {len(CANDIDATES)} candidates", whole=True)

    def skeleton(self) -> list[str]:
        return self._conv_skeleton(STEM_CHS, [f"stage {s}: {depth} searched layer(s), {width} ch, first stride {stride}"
                                              for s, (depth, width, stride) in enumerate(STAGES)], HEAD_CHS,
                                   self.dropout)

