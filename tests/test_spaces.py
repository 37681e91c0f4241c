"""Search spaces: the zoo's fixed points are points of their spaces; sampling, mutation and
crossover keep their contracts; counts are exact; bad input fails with a message naming the
place. Parametrized over every registered space."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np
import optuna
import pytest
import torch

from nas.arch import Arch, Block
from nas.builder import build_model
from search_spaces import zoo
from search_spaces.fbnet import CANDIDATES, FBNetSpace
from search_spaces.layerwise import ViewSpace, layerwise_view
from search_spaces.mobile import MobileSpace, Stage
from search_spaces.mobile_tables import shrink
from search_spaces.registry import OpConfig
from search_spaces.space import Choice, EncoderError, SearchSpace, as_rng
from search_spaces.spaces import get_space, home_spaces, space_for, space_names
from search_spaces.templates import Template
from search_spaces.zoo.hardnet import HARDNET39DS

N_SAMPLES = 200
# Spaces with a fixed input size are opened at 32 pixels; ``mobile`` samples get 64, its smallest
# core resolution (still a point of the space).
SMALL_RES = {"fbnet": 32, "mnasnet": 32, "hardnet": 32}
MOBILE_RES = 64


def small_space(name: str) -> SearchSpace:
    return get_space(name, resolution=SMALL_RES[name]) if name in SMALL_RES else get_space(name)


def small_arch(name: str, arch: Arch) -> Arch:
    return arch.replace(resolution=MOBILE_RES) if name == "mobile" else arch


@pytest.fixture(scope="module", params=space_names())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def samples(name: str) -> list[tuple[int, ...]]:
    space = small_space(name)
    rng = np.random.default_rng(1234)
    return [space.sample_point(rng) for _ in range(N_SAMPLES)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Many tiny forward passes run fastest (and steadiest on a busy machine) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------- registry
def test_registry_lists_spaces_and_rejects_unknown() -> None:
    assert space_names() == ["fbnet", "mnasnet", "mobile", "hardnet"]
    with pytest.raises(ValueError, match="unknown search space 'nope'; known: fbnet, mnasnet, mobile, hardnet"):
        get_space("nope")
    with pytest.raises(ValueError, match="fbnet"):
        get_space("fbnet", width=2)
    assert get_space("fbnet") is get_space("fbnet")


@pytest.mark.parametrize("entry", zoo.names())
def test_zoo_entry_is_a_point_of_its_spaces(entry: str) -> None:
    arch = zoo.get(entry)
    homes = home_spaces(entry)
    assert homes, entry
    for space_name in homes:
        space = space_for(space_name, arch)
        point = space.encode(arch)
        assert space.decode(point) == arch
        assert space.contains(arch)
    assert ("mobile" in homes) == (not entry.startswith("hardnet"))


def test_zoo_points_of_family_spaces() -> None:
    assert home_spaces("fbnet_c") == ("fbnet", "mobile")
    assert home_spaces("mnasnet_a1") == home_spaces("mnasnet_b1") == ("mnasnet", "mobile")
    assert home_spaces("hardnet39ds") == home_spaces("hardnet68ds") == ("hardnet",)
    # FBNet-C takes the skip candidate in the second layer of its 24-channel stage.
    point = get_space("fbnet").encode(zoo.get("fbnet_c"))
    assert [tuple(CANDIDATES)[i] for i in point[:6]] == ["k3_e1", "k3_e6", "skip", "k3_e1", "k3_e1", "k5_e6"]


# ------------------------------------------------------------------------------ sampling etc.
def test_samples_validate_build_and_run(name: str, samples: list[tuple[int, ...]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    space = small_space(name)
    # The builder initialises every conv and linear layer itself; skipping torch's default
    # initialisation, which it overwrites, halves the time of these 200 builds.
    for layer in (torch.nn.Conv2d, torch.nn.Linear):
        monkeypatch.setattr(layer, "reset_parameters", lambda self: None)
    torch.manual_seed(0)
    for point in samples:
        arch = small_arch(name, space.decode(point))
        model = build_model(arch).eval()
        with torch.no_grad():
            y = model(torch.randn(1, 3, arch.resolution, arch.resolution))
        assert y.shape == (1, arch.num_classes) and torch.isfinite(y).all()


def test_encode_decode_round_trip(name: str, samples: list[tuple[int, ...]]) -> None:
    space = small_space(name)
    for point in samples:
        arch = space.decode(point)
        again = space.encode(arch)
        assert space.decode(again) == arch
        if name != "mobile":  # mobile's width multiplier overlaps its listed widths: arch-level only
            assert again == point


def test_same_seed_same_samples(name: str) -> None:
    space = small_space(name)
    a = [space.sample_point(np.random.default_rng(7)) for _ in range(3)]
    assert a == [space.sample_point(np.random.default_rng(7)) for _ in range(3)]
    gen1, gen2 = np.random.default_rng(11), np.random.default_rng(11)
    assert [space.sample(gen1) for _ in range(5)] == [space.sample(gen2) for _ in range(5)]
    assert space.sample_point(5) == space.sample_point(5)
    assert space.mutate_point(a[0], 3) == space.mutate_point(a[0], 3)
    assert space.crossover_points(a[0], a[1], 3) == space.crossover_points(a[0], a[1], 3)


def test_mutate_changes_exactly_one_choice(name: str, samples: list[tuple[int, ...]]) -> None:
    space = small_space(name)
    rng = np.random.default_rng(5)
    for point in samples[:100]:
        child = space.mutate_point(point, rng)
        before, after = space.active(point), space.active(child)
        changed = [c.name for c, x, y, a, b in zip(space.choices, point, child, before, after, strict=True) if a and b and x != y]
        assert len(changed) == 1, changed
        assert space.decode(child) != space.decode(point)
    arch = space.decode(samples[0])
    mutated = space.mutate(arch, rng)
    assert space.contains(mutated) and mutated != arch


def test_crossover_takes_every_choice_from_a_parent(name: str, samples: list[tuple[int, ...]]) -> None:
    space = small_space(name)
    rng = np.random.default_rng(9)
    mixed = 0
    for a, b in zip(samples[:100:2], samples[1:100:2], strict=True):
        child = space.crossover_points(a, b, rng)
        assert space.is_valid(child)
        active = space.active(child)
        for c, x, pa, pb, on in zip(space.choices, child, a, b, active, strict=True):
            assert (x in (pa, pb)) if on else x == 0, c.name
        mixed += child not in (a, b)
    assert mixed > 10
    arch = space.crossover(space.decode(samples[0]), space.decode(samples[1]), rng)
    assert space.contains(arch)


def test_op_configs_cover_samples(name: str, samples: list[tuple[int, ...]]) -> None:
    space = small_space(name)
    if name == "mobile":
        table = set(space.op_configs(MOBILE_RES, core_only=True))
    else:
        table = set(space.op_configs())
    assert len(table) == len({c.key() for c in table})
    for point in samples[:50]:
        arch = small_arch(name, space.decode(point))
        missing = [c.key() for c in arch.op_configs() if c not in table]
        assert not missing, missing[:3]


# ----------------------------------------------------------------------------------- counting
def test_sizes() -> None:
    assert get_space("fbnet").size() == 9**22
    # MnasNet: per stage 2 (conv) + 8 (ds) + 16 (MBConv) op variants, times depths and widths.
    mnas = get_space("mnasnet")
    depths = [c for c in mnas.choices if c.name.endswith(".layers")]
    widths = [c for c in mnas.choices if c.name.endswith(".width")]
    assert mnas.size() == math.prod(26 * len(d) * len(w) for d, w in zip(depths, widths, strict=True))
    assert get_space("hardnet").size() == 15**4 + 15**5
    for n in space_names():
        s = get_space(n)
        assert s.log10_size() == pytest.approx(math.log10(s.size()))
        assert s.size(core_only=True) <= s.size()


def test_mobile_core_points_all_build() -> None:
    mobile = get_space("mobile")
    # The tree count assumes every assignment builds; the exact count finds they all do.
    assert SearchSpace.size(mobile, core_only=True) == mobile.size(core_only=True)
    assert mobile.size() > mobile.size(core_only=True)


def test_mobile_templates_shrink_maps_alike() -> None:
    for t in get_space("mobile").templates:
        for size in range(1, 70):
            for stride, ds in ((1, "standard"), (2, "standard"), (2, "padding_free")):
                if ds == "standard" or t.has_downsample:
                    assert t.out_size(size, stride, ds) == shrink(size, stride, ds), (t.label, size, stride, ds)


def _all_points(space: SearchSpace) -> Iterator[tuple[int, ...]]:
    def rec(prefix: list[int], active: list[bool]) -> Iterator[tuple[int, ...]]:
        i = len(prefix)
        if i == len(space.choices):
            yield tuple(prefix)
            return
        on = space._active_at(i, prefix, active)
        for v in range(len(space.choices[i])) if on else (0,):
            yield from rec(prefix + [v], active + [on])

    return rec([], [])


def _tiny_mobile() -> MobileSpace:
    """A small superspace with every kind of invalid combination: a max-pool asked to widen,
    mixed kernels that do not divide a width, padding-free downsampling of a tiny map, a
    stride-1 padding-free layer, a ShuffleNetV2 unit widening at stride 1."""
    return MobileSpace(
        stages=(Stage(1, 16, (1,), (0,), (12,)), Stage(2, 24, (1, 2), (0,), (20,), (1,))),
        templates=("ir_k3_e1", "skip"),
        extra_templates=("mp", "ir_k3.5.7_e1", "shuffle"),
        resolutions=(8,), extra_resolutions=(4,), width_multipliers=(1.0, 0.5),
        stem_kinds=("conv",), extra_stem_kinds=("hybrid",), stem_width=16, extra_stem_widths=(12,),
        stem_acts=("relu",), extra_stem_acts=(), heads=("hc_c32",), extra_heads=("hp",),
    )


def test_mobile_count_and_configs_match_brute_force() -> None:
    space = _tiny_mobile()
    valid: list[Arch] = []
    invalid = 0
    core_valid = 0
    for point in _all_points(space):
        try:
            arch = space.decode(point)
        except ValueError:
            invalid += 1
            continue
        valid.append(arch)
        core_valid += all(v in space.choices[i].core for i, (v, on) in enumerate(zip(point, space.active(point), strict=True))
                          if on)
    assert invalid > 0
    assert space.size() == len(valid)
    assert space.size(core_only=True) == core_valid
    configs = {c for a in valid for c in a.op_configs()}
    assert set(space.op_configs()) == configs


def _toy_cost(cfg: OpConfig) -> float:
    """A positive cost per op configuration, unrelated to its size (so the cheapest network is
    not simply the smallest)."""
    return 0.1 + int(hashlib.sha256(cfg.key().encode()).hexdigest()[:6], 16) / 0xFFFFFF


def test_mobile_min_cost_matches_brute_force() -> None:
    space = _tiny_mobile()
    totals: dict[tuple[bool, int], list[float]] = {}
    for point in _all_points(space):
        try:
            arch = space.decode(point)
        except ValueError:
            continue
        total = sum(_toy_cost(c) for c in arch.op_configs())
        core = all(v in space.choices[i].core for i, (v, on) in enumerate(zip(point, space.active(point), strict=True)) if on)
        for core_only in (False, True) if core else (False,):
            totals.setdefault((core_only, arch.resolution), []).append(total)
    for core_only in (False, True):
        assert space.min_cost(_toy_cost, core_only=core_only) == pytest.approx(
            min(min(v) for (c, _), v in totals.items() if c == core_only))
    for res in (4, 8):  # 4 is an extra (non-core) resolution
        assert space.min_cost(_toy_cost, res) == pytest.approx(min(totals[(False, res)]))


def test_fbnet_min_cost_is_every_layer_at_its_cheapest() -> None:
    space = get_space("fbnet", resolution=32, num_classes=10)
    view = layerwise_view(space)
    cheapest = [min(range(len(layer)), key=lambda k, layer=layer: _toy_cost(layer.configs[k])) for layer in view.layers]
    assert space.min_cost(_toy_cost) == pytest.approx(sum(_toy_cost(c) for c in view.arch(cheapest).op_configs()))
    assert ViewSpace(view).min_cost(_toy_cost) == pytest.approx(space.min_cost(_toy_cost))


@pytest.mark.parametrize("name", ["mnasnet", "hardnet"])
def test_min_cost_of_staged_spaces_is_attained_and_beaten_by_nothing_nearby(name: str) -> None:
    """``mnasnet`` (a programme over stage widths) and ``hardnet`` (separable stages) are too big
    to enumerate: their least cost is that of a point, which no sampled point and no change of one
    of its choices undercuts."""
    space = get_space(name, resolution=64, num_classes=10)
    floor = space.min_cost(_toy_cost)

    def total(arch: Arch) -> float:
        return sum(_toy_cost(c) for c in arch.op_configs())

    assert all(total(space.sample(seed)) >= floor - 1e-9 for seed in range(100))
    cheapest = space._decode(space.cheapest_values(_toy_cost))
    assert total(cheapest) == pytest.approx(floor)
    point = space.encode(cheapest)
    for i, c in enumerate(space.choices):
        for j in range(len(c)):
            neighbour = (*point[:i], j, *point[i + 1:])
            if space.is_valid(neighbour):
                assert total(space.decode(neighbour)) >= floor - 1e-9, (c.name, c.labels[j])


def test_tree_count_matches_enumeration() -> None:
    class Toy(SearchSpace):
        name = "toy"

        def __init__(self) -> None:
            super().__init__([
                Choice("op", ("a", "b", "c"), core=(0, 1)),
                Choice("k", (3, 5), parent="op", when=frozenset({1, 2})),
                Choice("e", (1, 2, 3), parent="k", when=frozenset({1})),
                Choice("n", (1, 2)),
            ])

        def _decode(self, values):  # pragma: no cover - not built
            raise NotImplementedError

        def _encode(self, arch):  # pragma: no cover - not built
            raise NotImplementedError

        def op_configs(self, resolution=None, *, core_only=False):  # pragma: no cover
            return []

        def skeleton(self):  # pragma: no cover
            return []

    toy = Toy()
    points = list(_all_points(toy))
    assert toy.size() == len(points) == (1 + 2 * (1 + 3)) * 2
    assert toy.size(core_only=True) == (1 + (1 + 3)) * 2


# ------------------------------------------------------------------------------------ optuna
def test_optuna_distributions_and_params(name: str, samples: list[tuple[int, ...]]) -> None:
    space = small_space(name)
    dists = space.optuna_distributions()
    assert list(dists) == [c.name for c in space.choices]
    assert all(isinstance(d, optuna.distributions.CategoricalDistribution) for d in dists.values())
    for point in samples[:20]:
        labels = space.labels(point)
        assert space.from_optuna_params(labels) == space.decode(point)
        assert space.point_from_labels(labels) == point
    with pytest.raises(ValueError, match="missing"):
        space.from_optuna_params({})


def test_optuna_suggest_and_ask(name: str) -> None:
    space = small_space(name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    archs = []
    for _ in range(3):
        trial = study.ask()
        try:
            arch = space.suggest(trial)
        except ValueError:  # an invalid combination: tell the sampler it failed
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        archs.append(arch)
        study.tell(trial, 0.0)
    assert archs and all(space.contains(a) for a in archs)
    trial = study.ask(fixed_distributions=space.optuna_distributions())
    assert space.is_valid(space.point_from_labels(trial.params))


# -------------------------------------------------------------------------------- bad input
def test_decode_rejects_bad_points(name: str, samples: list[tuple[int, ...]]) -> None:
    space = small_space(name)
    n = len(space.choices)
    with pytest.raises(ValueError, match=f"expected {n} choice indices"):
        space.decode(samples[0][:-1])
    bad = list(samples[0])
    bad[0] = len(space.choices[0])
    with pytest.raises(ValueError, match=f"choice '{space.choices[0].name}'.*out of range"):
        space.decode(bad)
    with pytest.raises(ValueError, match="integer"):
        space.decode([0.5] * n)
    with pytest.raises(ValueError, match="sequence"):
        space.decode("0" * n)
    inactive = [i for i, on in enumerate(space.active(samples[0])) if not on]
    if inactive:
        bad = list(samples[0])
        bad[inactive[0]] = 1
        with pytest.raises(ValueError, match="inactive"):
            space.decode(bad)


def test_fbnet_errors_name_the_layer() -> None:
    fbnet = get_space("fbnet")
    arch = zoo.get("fbnet_c")
    blocks = list(arch.blocks)
    blocks[3] = blocks[3].replace(kernel=7)
    with pytest.raises(ValueError, match=r"choice 'layer3' \(stage 1, layer 2.*not one of the candidates"):
        fbnet.encode(arch.replace(blocks=tuple(blocks)))
    with pytest.raises(ValueError, match="expected 22 blocks"):
        fbnet.encode(arch.replace(blocks=arch.blocks[:-1]))
    with pytest.raises(ValueError, match="stem"):
        fbnet.encode(zoo.get("mnasnet_a1"))
    with pytest.raises(ValueError, match="resolution is 32"):
        fbnet.encode(arch.replace(resolution=32))
    with pytest.raises(ValueError, match="index 9 is out of range 0..8"):
        fbnet.decode([9] + [0] * 21)
    assert not fbnet.contains(zoo.get("mobilenet_v2_100"))


def test_an_encoder_bug_is_raised_not_taken_for_not_in_the_space(monkeypatch) -> None:
    fbnet = FBNetSpace(resolution=224)
    arch = fbnet.sample(0)
    real = fbnet._encode

    def off_by_one(a: Arch) -> dict[str, int]:  # a broken encoder: layer 0 one candidate off
        indices = dict(real(a))
        first = fbnet.choices[0].name
        indices[first] = (indices[first] + 1) % len(fbnet.choices[0].values)
        return indices

    monkeypatch.setattr(fbnet, "_encode", off_by_one)
    with pytest.raises(EncoderError, match="decodes otherwise: block 0"):
        fbnet.contains(arch)
    assert not fbnet.contains(zoo.get("mobilenet_v2_100"))  # outside the space: still a plain no


def test_mnasnet_errors_name_the_stage() -> None:
    mnas = get_space("mnasnet")
    arch = zoo.get("mnasnet_a1")
    blocks = list(arch.blocks)
    blocks[1] = blocks[1].replace(out_chs=48)
    blocks[2] = blocks[2].replace(out_chs=48)
    with pytest.raises(ValueError, match="stage 1, block 1.*width 48"):
        mnas.encode(arch.replace(blocks=tuple(blocks)))
    with pytest.raises(ValueError, match=r"stage 3 \(blocks 6..7\): 2 identical layers, the stage takes 3 or 4 or 5"):
        mnas.encode(arch.replace(blocks=arch.blocks[:8] + arch.blocks[10:]))


def test_mobile_errors_name_the_block() -> None:
    mobile = get_space("mobile")
    arch = zoo.get("mobilenet_v2_100")
    blocks = list(arch.blocks)
    blocks[5] = blocks[5].replace(exp_ratio=5.0)
    with pytest.raises(ValueError, match=r"block 5: stage 2, layer 2: ir .*template ir_e5_arelu6.* not a layer template"):
        mobile.encode(arch.replace(blocks=tuple(blocks)))
    with pytest.raises(ValueError, match="resolution 100 is not one of"):
        mobile.encode(arch.replace(resolution=100))
    with pytest.raises(ValueError, match="num_classes is 10"):
        mobile.encode(arch.replace(num_classes=10))
    with pytest.raises(ValueError, match="head"):
        mobile.encode(arch.replace(head=Block.make("hc", out_chs=1000)))
    # An invalid combination: a max-pool asked to change the width of the first stage.
    point = list(mobile.encode(zoo.get("shufflenet_v2_x1_0")))  # stage 1: the max-pool, 24 wide
    point[mobile._index["stem_width"]] = 0  # a 16-wide stem
    with pytest.raises(ValueError, match=r"stage 1, layer 0 \(block 0\): mp: op 'mp' keeps its 16 input channels"):
        mobile.decode(point)
    assert not mobile.is_valid(point)


def test_hardnet_errors() -> None:
    hardnet = get_space("hardnet")
    with pytest.raises(ValueError, match="not a HarDNet-DS architecture"):
        hardnet.encode(zoo.get("mobilenet_v2_100"))
    with pytest.raises(ValueError, match="growth 18 is not one of"):
        hardnet.encode(HARDNET39DS.replace_stages(growth=[18, 20, 64, 160]).arch())


def test_rng_and_operator_input() -> None:
    assert isinstance(as_rng(3), np.random.Generator)
    for bad in (None, 1.5, True, "x"):
        with pytest.raises(ValueError, match="rng"):
            as_rng(bad)
    fbnet = get_space("fbnet")
    with pytest.raises(ValueError, match="encode expects an Arch"):
        fbnet.encode("fbnet_c")
    with pytest.raises(ValueError, match="no choice"):
        fbnet.choice("nope")


def test_templates() -> None:
    t = Template.parse("ghost_e3_k5_se0.25")
    assert t.label == "ghost_e3_k5_se0.25" and t.ratios == (("mid_chs", 3.0),)
    assert t.block(16, 24, 2, "padding_free")["mid_chs"] == 48
    assert Template.of_block(zoo.get("ghostnet_100").blocks[7]).label == "ghost_m184"
    for bad, why in (("ir_c16_e6", "out_chs is left to the skeleton"), ("ir_e6_s2", "stride is left"),
                     ("hc_c1280", "not a body block"), ("zz", "unknown op")):
        with pytest.raises(ValueError, match=why):
            Template.parse(bad)
    with pytest.raises(ValueError, match="keeps its 16 input channels"):
        Template.parse("mp").block(16, 24, 2)


def test_op_configs_sorted_and_keyed() -> None:
    configs = get_space("fbnet").op_configs()
    assert configs == sorted(configs, key=OpConfig.key)
    # 22 layers x 9 candidates over 13 distinct (input, output, stride) shapes, stem and head.
    shapes = {(c.in_chs, c.in_size, dict(c.args).get("out_chs"), dict(c.args).get("stride"))
              for c in configs if c.op in ("ir", "skip")}
    assert len(configs) == 9 * len(shapes) + 2
    assert FBNetSpace(resolution=32).op_configs() == get_space("fbnet").op_configs(32)


# ---------------------------------------------------------------------------------------- CLI
def test_cli_list_show_sample(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from nas.cli import main

    assert main(["space", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == space_names()
    assert listed[0]["log10_size"] == pytest.approx(22 * math.log10(9))

    assert main(["space", "show", "fbnet", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["size"] == 9**22 and shown["zoo_points"] == ["fbnet_c"]
    assert shown["choices"][0]["values"] == list(CANDIDATES)

    assert main(["space", "show", "mnasnet"]) == 0
    out = capsys.readouterr().out
    assert f"points: {get_space('mnasnet').size()}" in out and "zoo points (1000 classes): mnasnet_a1, mnasnet_b1" in out

    assert main(["space", "sample", "mobile", "-n", "2", "--seed", "4", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["space", "sample", "mobile", "-n", "2", "--seed", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == first
    mobile = get_space("mobile")
    for record in first:
        arch = Arch.from_dict(record["arch"])
        assert mobile.decode(record["point"]) == arch and arch.hash() == record["hash"]

    assert main(["space", "sample", "fbnet", "--resolution", "32", "--num-classes", "10"]) == 0
    assert Arch.from_str(capsys.readouterr().out).num_classes == 10

    assert main(["space", "show", "nope"]) == 2
    assert "unknown search space 'nope'" in capsys.readouterr().err
    assert main(["space", "sample", "fbnet", "-n", "0"]) == 2


@pytest.mark.parametrize("argv", [["space"], ["space", "list"], ["space", "show"], ["space", "sample"]])
def test_cli_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: nas space" in capsys.readouterr().out


def test_one_stem_vocabulary_for_spaces_and_zoo() -> None:
    """``search_spaces.stems``: every kind reads back from its block; other blocks are no stem kind."""
    from search_spaces.stems import STEM_KINDS, stem_block, stem_kind

    for kind in STEM_KINDS:
        assert stem_kind(stem_block(kind, 24, "hswish")) == kind
    assert stem_kind(Block.make("cn", out_chs=24, kernel=5, stride=2)) is None
    assert stem_kind(Block.make("ir", out_chs=24, exp_ratio=6)) is None
    with pytest.raises(ValueError, match="stem must be one of conv, conv_s1, hybrid"):
        stem_block("cn", 24)
    assert zoo.get("cifar_ghostnet_100").stem == stem_block("conv_s1", 16, "relu")
    assert zoo.get("cifar_ghostnet_100_pf").stem == stem_block("hybrid", 16, "relu")
