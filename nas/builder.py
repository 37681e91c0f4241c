"""Build a ``torch.nn.Module`` from an :class:`~nas.arch.Arch` through the op registry.

Before anything is allocated, :func:`check_size` bounds the network's memory from its description
(a description with 10^9 channels or a 10^5-pixel input is valid data, but would try to allocate
hundreds of GB): parameters plus the activations of one image, in float32, must stay under
``LITENAS_MAX_MODEL_GB`` (default 4 GB, an environment variable), far above any mobile network
(MobileNetV2 at 224 px: under 0.1 GB).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from nas.arch import Arch
from nas.checks import is_int
from nas.features import FeatureInfo, feature_info, feature_layers, feature_take_indices
from search_spaces.registry import HeadModule, OpConfig

#: Environment variable overriding :data:`DEFAULT_MAX_MODEL_GB`.
MAX_MODEL_GB_ENV = "LITENAS_MAX_MODEL_GB"
#: Default bound (GB) on a network's float32 parameters plus the activations of one image.
DEFAULT_MAX_MODEL_GB = 4.0
_BYTES = 4  # float32
_OVERFLOW = 2**63


class LiteNet(nn.Module):
    """A network built from an :class:`Arch`: ``stem -> blocks -> head``.

    ``forward_features`` returns the last feature map, ``forward_head`` pools and classifies it,
    ``reset_classifier`` swaps the final linear layer (0 classes: pooled features).
    ``forward_intermediates`` returns the multi-scale feature maps that ``feature_info`` describes
    (timm's convention, :mod:`nas.features`), for detection and segmentation heads.
    """

    def __init__(self, arch: Arch):
        super().__init__()
        check_size(arch)
        self.arch = arch
        stem, *body, head = arch.op_configs()
        self.stem = stem.build()
        self.blocks = nn.Sequential(*(cfg.build() for cfg in body))
        self.head = head.build()
        if not isinstance(self.head, HeadModule):  # a registration error, caught at the first build
            raise TypeError(f"head op {head.op!r} builds a {type(self.head).__name__}, not a HeadModule "
                            "(num_features, classifier, reset)")
        self.num_classes = arch.num_classes
        self.feature_info = feature_info(arch)
        self.feature_layers = feature_layers(arch)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    @torch.jit.export
    def forward_intermediates(
        self, x: torch.Tensor, indices: int | list[int] | None = None, intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The feature maps ``feature_info`` lists (``indices``: all; the last ``n``; or a list of
        positions in ``feature_info``), in network order, and the output of ``forward_features``;
        only the maps with ``intermediates_only``, which stops after the last one it needs."""
        wanted = [self.feature_layers[i] for i in feature_take_indices(len(self.feature_layers), indices)]
        last = wanted[-1] if intermediates_only else len(self.blocks)
        x = self.stem(x)
        maps = [x] if wanted[0] == 0 else []
        for i, block in enumerate(self.blocks):
            if i < last:
                x = block(x)
                if i + 1 in wanted:
                    maps.append(x)
        if intermediates_only:
            return maps
        return x, maps

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` outputs."""
        if not is_int(num_classes) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        self.head.reset(num_classes)
        self.num_classes = num_classes
        if isinstance(self.head.classifier, nn.Linear):
            _init_linear(self.head.classifier)


def _init_linear(m: nn.Linear) -> None:
    nn.init.normal_(m.weight, 0, 0.01)
    nn.init.zeros_(m.bias)


def init_weights(model: nn.Module) -> None:
    """MobileNet-style initialisation (as torchvision's MobileNetV2/V3): Kaiming-normal fan-out
    convs, unit BN, small-normal linears. Deterministic under ``torch.manual_seed``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            _init_linear(m)


def zero_last_bn_of_residuals(blocks: Iterable[nn.Module]) -> None:
    """Start every residual block of ``blocks`` (modules whose ``has_skip`` is true) as the
    identity: its last BatchNorm's scale is set to zero (Goyal et al., "Accurate, Large Minibatch
    SGD", 2017; timm's ``zero_init_last``). A supernet needs it: every residual candidate of a
    deep random path adds its unit-variance output to the stream, and on fbnet@32 the gradient
    reaching the stem at initialisation had norm 33-46 without it, 3.5-4 with it."""
    for block in blocks:
        if getattr(block, "has_skip", False):
            bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
            if bns:
                nn.init.zeros_(bns[-1].weight)


@functools.cache
def op_footprint(config: OpConfig) -> tuple[int, int]:
    """``(parameters, activation values for one image)`` of one op configuration, from the op
    built on the ``meta`` device (shapes only, nothing allocated). The activations are estimated
    as the op's input plus its widest convolution's output, at the op's input size."""
    try:
        with torch.device("meta"):
            module = config.build()
    except RuntimeError as exc:
        if "overflow" not in str(exc):
            raise
        return _OVERFLOW, 0  # more elements than an int64 counts: too large by any limit
    params = sum(p.numel() for p in module.parameters())
    widest = max((m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)), default=0)
    return params, (config.in_chs + widest) * config.in_size * config.in_size


def max_model_bytes() -> float:
    """The size bound of :func:`check_size` in bytes (``LITENAS_MAX_MODEL_GB``, default 4)."""
    text = os.environ.get(MAX_MODEL_GB_ENV, "")
    try:
        gb = float(text) if text else DEFAULT_MAX_MODEL_GB
    except ValueError:
        gb = -1.0
    if not gb > 0 or gb == float("inf"):
        raise ValueError(f"{MAX_MODEL_GB_ENV}: expected a number of GB > 0, got {text!r}")
    return gb * 1e9


def check_size(arch: Arch) -> None:
    """``ValueError`` when ``arch`` is estimated to need more memory than :func:`max_model_bytes`
    (parameters + one image's activations, float32), naming the largest layer, so an absurd
    description is refused before it allocates anything."""
    limit = max_model_bytes()
    configs = arch.op_configs()
    footprints = [op_footprint(c) for c in configs]
    params = sum(p for p, _ in footprints)
    activations = sum(a for _, a in footprints)
    total = (params + activations) * _BYTES
    if total <= limit:
        return
    names = ["stem", *(f"layer {i}" for i in range(len(configs) - 2)), "head"]
    worst = max(range(len(configs)), key=lambda i: sum(footprints[i]))
    raise ValueError(f"architecture too large: about {params / 1e9:.3g} G parameters and {activations / 1e9:.3g} G "
                     f"activation values per image, {total / 1e9:.3g} GB in float32 (largest: {names[worst]} "
                     f"({configs[worst].op}, {configs[worst].in_chs} channels in at {configs[worst].in_size} px)); "
                     f"the limit is {limit / 1e9:.3g} GB: set {MAX_MODEL_GB_ENV} to raise it")


class LiteNetFeatures(nn.Module):
    """A backbone: the stem and blocks of a :class:`LiteNet` up to its last selected feature map,
    whose ``forward`` returns the feature maps at ``out_indices`` (positions in the network's
    ``feature_info``; ``None``: all). timm's ``features_only`` model: ``feature_info`` lists the
    selected maps (``.channels()``, ``.reduction()``, ``.module_name()``). It shares the network's
    modules and their state-dict names, so a trained network's weights come with it
    (``LiteNetFeatures(nas.load("net.pt"), (1, 2, 3))``)."""

    def __init__(self, net: LiteNet, out_indices: Sequence[int] | None = None):
        super().__init__()
        if not isinstance(net, LiteNet):
            raise ValueError(f"LiteNetFeatures wraps a LiteNet, got {type(net).__name__}")
        take = feature_take_indices(len(net.feature_layers), None if out_indices is None else list(out_indices))
        self.out_layers = [net.feature_layers[i] for i in take]
        self.feature_info = FeatureInfo(net.feature_info[i] for i in take)
        self.stem = net.stem
        self.blocks = nn.Sequential(*list(net.blocks)[:self.out_layers[-1]])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        maps = [x] if self.out_layers[0] == 0 else []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i + 1 in self.out_layers:
                maps.append(x)
        return maps


def build_model(arch: Arch, *, features_only: bool = False,
                out_indices: Sequence[int] | None = None) -> LiteNet | LiteNetFeatures:
    """The PyTorch module described by ``arch``: a fresh, initialised :class:`LiteNet`, or with
    ``features_only`` its backbone returning the feature maps at ``out_indices``
    (:class:`LiteNetFeatures`; positions in ``feature_info``, ``None``: all)."""
    if not isinstance(arch, Arch):
        raise ValueError(f"build_model expects an Arch, got {type(arch).__name__}")
    if not features_only:
        if out_indices is not None:
            raise ValueError("out_indices selects the feature maps of a features_only model; pass features_only=True")
        return LiteNet(arch)
    return LiteNetFeatures(LiteNet(arch), out_indices)
