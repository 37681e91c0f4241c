"""HarDNet, depthwise-separable flavour (Chao et al., "HarDNet: A Low Memory Traffic Network",
ICCV 2019).

``hardnet39ds`` and ``hardnet68ds`` reproduce pytorchcv's (osmr/imgclsmob) models of those names,
the implementation behind the seed's parameter table, layer for layer:

- stem: 3x3 stride-2 conv-BN-ReLU6 to ``stem_chs // 2``, 1x1 conv-BN-ReLU6 to ``stem_chs``,
  depthwise 3x3 stride-2 conv-BN (no activation);
- per stage: a harmonic dense block (op ``hardnet``), a 1x1 conv-BN-ReLU6 transition to the
  stage's width, and, where the reference downsamples, a depthwise 3x3 stride-2 conv-BN;
- head: global average pool (the reference's fixed 7x7 pool at 224 px), dropout 0.05, linear.

A HarDNet-DS network is fully defined by a :class:`HarDNetDef`: the stem width, the growth
multiplier, and per stage a :class:`HarDStage` (growth rate, block depth, transition width,
whether it downsamples). This is the parameterisation a ``hardnet`` search space varies: each
stage's ``growth`` and ``layers`` (and, if wanted, ``out_chs``) are its decisions, over a
template of stages. Both zoo nets are values of it (:data:`HARDNET39DS`, :data:`HARDNET68DS`);
they differ in stage count (4 vs 5), stem width, multiplier and transition widths, so a space
containing both either offers both templates (``HarDNetDef.replace_stages`` varies growth and
depth within a template) or lets those fields vary too. :meth:`HarDNetDef.from_arch` recovers
the definition from an architecture, which is how a space tells whether a zoo net is one of its
points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from nas.arch import Arch, Block
from search_spaces.stems import stem_block
from search_spaces.zoo import ZooEntry

__all__ = ["HarDStage", "HarDNetDef", "HARDNET39DS", "HARDNET68DS", "hardnet"]

PAPER = "Chao et al., HarDNet: A Low Memory Traffic Network, ICCV 2019"
_REF = "pytorchcv (osmr/imgclsmob) :: {}"


@dataclass(frozen=True)
class HarDStage:
    """One stage: a harmonic dense block, its 1x1 transition, an optional stride-2 downsample.

    ``growth``: the block's growth rate; ``layers``: its depth; ``out_chs``: the transition's
    width; ``downsample``: a depthwise 3x3 stride-2 conv-BN after the transition.
    """

    growth: int
    layers: int
    out_chs: int
    downsample: bool


@dataclass(frozen=True)
class HarDNetDef:
    """Everything that defines a HarDNet of the depthwise-separable flavour.

    ``act`` is used throughout (ReLU6 in the reference); ``dropout`` is the classifier's. (The
    ``hardnet`` op also has the plain 3x3 layers of HarDNet-68/85, ``layer="conv"``; those nets
    differ elsewhere too, max-pool downsampling and ReLU inside the blocks, and are not in the zoo.)
    """

    stem_chs: int
    mult: float
    stages: tuple[HarDStage, ...]
    act: str = "relu6"
    dropout: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.stages, list):
            object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise ValueError("a HarDNet needs at least one stage")
        if self.stem_chs < 2 or self.stem_chs % 2:
            raise ValueError(f"stem_chs must be even and >= 2, got {self.stem_chs}")

    @property
    def growth(self) -> tuple[int, ...]:
        return tuple(s.growth for s in self.stages)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(s.layers for s in self.stages)

    def replace_stages(self, *, growth: Sequence[int] | None = None, layers: Sequence[int] | None = None) -> HarDNetDef:
        """A copy with per-stage growth rates and/or block depths changed (the search decisions)."""
        n = len(self.stages)
        for name, values in (("growth", growth), ("layers", layers)):
            if values is not None and len(values) != n:
                raise ValueError(f"{name}: expected {n} values (one per stage), got {len(values)}")
        stages = tuple(
            replace(s, growth=s.growth if growth is None else growth[i], layers=s.layers if layers is None else layers[i])
            for i, s in enumerate(self.stages)
        )
        return replace(self, stages=stages)

    def arch(self, resolution: int = 224, num_classes: int = 1000) -> Arch:
        """The network as an :class:`Arch`."""
        c = self.stem_chs
        blocks = [Block.make("cn", out_chs=c, kernel=1, act=self.act), _dw_down(c)]
        for s in self.stages:
            blocks.append(Block.make("hardnet", growth=s.growth, mult=self.mult, layers=s.layers,
                                     layer="ds", act=self.act))
            blocks.append(Block.make("cn", out_chs=s.out_chs, kernel=1, act=self.act))
            if s.downsample:
                blocks.append(_dw_down(s.out_chs))
        return Arch(
            resolution=resolution,
            num_classes=num_classes,
            stem=stem_block("conv", c // 2, self.act),
            blocks=tuple(blocks),
            head=Block.make("hp", dropout=self.dropout),
        )

    @classmethod
    def from_arch(cls, arch: Arch) -> HarDNetDef:
        """The definition of a DS-flavour HarDNet built by :meth:`arch`; ``ValueError`` otherwise."""
        blocks = list(arch.blocks)
        try:
            pw, down, *rest = blocks
            act = pw["act"]
            ok = (arch.stem.op == "cn" and pw.op == "cn" and down.op == "cn"
                  and pw["out_chs"] == 2 * arch.stem["out_chs"] and arch.head.op == "hp")
            if not ok or down != _dw_down(pw["out_chs"]):
                raise ValueError("stem")
            stages, mult, i = [], None, 0
            while i < len(rest):
                blk, trans = rest[i], rest[i + 1]
                if blk.op != "hardnet" or trans.op != "cn" or blk["layer"] != "ds":
                    raise ValueError("stage")
                if mult is not None and blk["mult"] != mult:
                    raise ValueError("mult")
                mult = blk["mult"]
                i += 2
                downsample = i < len(rest) and rest[i] == _dw_down(trans["out_chs"])
                i += int(downsample)
                stages.append(HarDStage(blk["growth"], blk["layers"], trans["out_chs"], downsample))
            d = cls(stem_chs=pw["out_chs"], mult=mult, stages=tuple(stages), act=act, dropout=arch.head["dropout"])
        except (ValueError, IndexError, KeyError, TypeError):
            raise ValueError("not a HarDNet-DS architecture as HarDNetDef.arch builds them") from None
        if d.arch(arch.resolution, arch.num_classes) != arch.replace(in_chans=3):
            raise ValueError("not a HarDNet-DS architecture as HarDNetDef.arch builds them")
        return d


def _dw_down(chs: int) -> Block:
    """Depthwise 3x3 stride-2 conv-BN, no activation (pytorchcv's ``dwconv3x3_block``)."""
    return Block.make("cn", out_chs=chs, kernel=3, stride=2, groups=chs, act="none")


def _stages(layers: Sequence[int], out_chs: Sequence[int], growth: Sequence[int], downsample: Sequence[int]) -> tuple:
    return tuple(HarDStage(g, n, c, bool(d)) for n, c, g, d in zip(layers, out_chs, growth, downsample, strict=True))


# pytorchcv's get_hardnet(blocks=39 / 68, use_deptwise=True): layers, channels_per_layers,
# growth_rates, downsamples, in its order.
HARDNET39DS = HarDNetDef(
    stem_chs=48, mult=1.6,
    stages=_stages([4, 16, 8, 4], [96, 320, 640, 1024], [16, 20, 64, 160], [1, 1, 1, 0]),
)
HARDNET68DS = HarDNetDef(
    stem_chs=64, mult=1.7,
    stages=_stages([8, 16, 16, 16, 4], [128, 256, 320, 640, 1024], [14, 16, 20, 40, 160], [1, 0, 1, 1, 0]),
)


def hardnet(definition: HarDNetDef, resolution: int = 224, num_classes: int = 1000) -> Arch:
    """The :class:`Arch` of a HarDNet definition."""
    return definition.arch(resolution, num_classes)


ENTRIES = (
    ZooEntry("hardnet39ds", lambda: hardnet(HARDNET39DS), PAPER, _REF.format("hardnet39ds")),
    ZooEntry(
        "hardnet68ds", lambda: hardnet(HARDNET68DS), PAPER, _REF.format("hardnet68ds"),
        note="4,180,602 parameters as pytorchcv counts them (its own test asserts it); the seed's table "
             "lists 4.181602 M, a typo",
    ),
)
