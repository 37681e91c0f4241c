"""Architecture descriptions: validation, JSON and string round-trips, hashing, the builder."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas import Arch, ArchError, Block, build_model
from search_spaces.registry import get_op, op_names

B = Block.make


def small_arch(**changes) -> Arch:
    arch = Arch(
        resolution=32,
        num_classes=10,
        stem=B("cn", out_chs=16, stride=2),
        blocks=(
            B("ds", out_chs=16),
            B("ir", out_chs=24, exp_ratio=4, kernel=(3, 5), stride=2, se_ratio=0.25),
            B("ir", out_chs=24, exp_ratio=3, act="hswish", se_ratio=0.25, se_style="mbv3"),
            B("skip", out_chs=32, stride=2),
        ),
        head=B("hp", hidden=64),
    )
    return arch.replace(**changes) if changes else arch


def test_block_normalises_and_fills_defaults() -> None:
    b = B("ir", {"out_chs": 8, "exp_ratio": 6, "kernel": [3]})
    assert b["kernel"] == 3 and b["exp_ratio"] == 6.0 and b["stride"] == 1 and b["se_ratio"] == 0.0
    assert B("ir", out_chs=8, exp_ratio=6.0, kernel=3) == b


def test_builder_shapes_and_api() -> None:
    arch = small_arch()
    torch.manual_seed(0)
    model = build_model(arch)
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, 32, 4, 4)
    assert model.forward_head(feats).shape == (2, 10)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)
    model.reset_classifier(0)
    assert model(x).shape == (2, 64)


def test_builder_is_deterministic_under_seed() -> None:
    arch = small_arch()
    torch.manual_seed(3)
    a = build_model(arch).state_dict()
    torch.manual_seed(3)
    b = build_model(arch).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_layers_report_sizes() -> None:
    sizes = [(info.in_size, info.out_size) for info in small_arch().layers()]
    assert sizes == [(32, 16), (16, 16), (16, 8), (8, 8), (8, 4), (4, 1)]


def test_roundtrips_and_hash() -> None:
    arch = small_arch()
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_str(arch.to_str()) == arch
    assert Arch.from_json(arch.to_json()).hash() == arch.hash()
    assert small_arch(num_classes=11).hash() != arch.hash()


def test_string_form_folds_repeats_and_reads_comments() -> None:
    arch = small_arch(blocks=(B("ds", out_chs=16),) * 3)
    text = arch.to_str()
    assert "ds_r3_c16" in text
    commented = "# a comment\n" + text.replace("ds_r3_c16", "ds_r3_c16   # three blocks")
    assert Arch.from_str(commented) == arch


def test_save_and_load(tmp_path) -> None:
    arch = small_arch()
    path = arch.save(tmp_path / "a.json")
    assert Arch.load(path) == arch
    (tmp_path / "a.arch").write_text(arch.to_str())
    assert Arch.load(tmp_path / "a.arch") == arch


def test_every_registered_op_has_abbreviations_that_parse_back() -> None:
    for name in op_names():
        spec = get_op(name)
        assert spec.summary
        for f in spec.fields:
            assert f.abbr.isalpha(), (name, f.name)


# --------------------------------------------------------------------------------------------
# Malformed descriptions: each must raise ValueError whose message names the problem.

GOOD = json.loads(small_arch().to_json())


def mutated(path: tuple, value) -> dict:
    data = json.loads(json.dumps(GOOD))
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


DELETE = object()

BAD_JSON = [
    (mutated(("blocks", 1, "op"), "mbconv"), ["unknown op 'mbconv'", "registered ops", "block 1"]),
    (mutated(("blocks", 1, "args", "out_chs"), 0), ["block 1", "out_chs", "> 0"]),
    (mutated(("blocks", 1, "args", "out_chs"), -8), ["block 1", "out_chs"]),
    (mutated(("blocks", 1, "args", "stride"), 3), ["block 1", "stride", "1 or 2"]),
    (mutated(("blocks", 1, "args", "kernel"), 4), ["block 1", "kernel", "odd"]),
    (mutated(("blocks", 1, "args", "kernel"), [3, 4]), ["block 1", "kernel", "odd"]),
    (mutated(("blocks", 1, "args", "kernel"), [3, 5, 7]), ["block 1", "kernel", "divide"]),
    (mutated(("blocks", 1, "args", "kernel"), [3, 3]), ["block 1", "kernel", "distinct"]),
    (mutated(("blocks", 1, "args", "kernel"), []), ["block 1", "kernel"]),
    (mutated(("blocks", 1, "args", "se_ratio"), 1.5), ["block 1", "se_ratio", "(0, 1]"]),
    (mutated(("blocks", 1, "args", "se_ratio"), -0.25), ["block 1", "se_ratio"]),
    (mutated(("blocks", 1, "args", "se_style"), "fancy"), ["block 1", "se_style", "effnet"]),
    (mutated(("blocks", 1, "args", "exp_ratio"), "six"), ["block 1", "exp_ratio", "number"]),
    (mutated(("blocks", 1, "args", "exp_ratio"), 0), ["block 1", "exp_ratio", "> 0"]),
    (mutated(("blocks", 1, "args", "out_chs"), 24.5), ["block 1", "out_chs", "integer"]),
    (mutated(("blocks", 1, "args", "out_chs"), True), ["block 1", "out_chs", "integer"]),
    (mutated(("blocks", 1, "args", "noskip"), "yes"), ["block 1", "noskip", "true or false"]),
    (mutated(("blocks", 1, "args", "act"), "gelu"), ["block 1", "act", "relu"]),
    (mutated(("blocks", 1, "args", "colour"), "red"), ["block 1", "unknown field 'colour'"]),
    (mutated(("blocks", 1, "args", "out_chs"), DELETE), ["block 1", "out_chs", "missing"]),
    (mutated(("blocks", 1, "args", "exp_groups"), 5), ["block 1", "exp_groups", "divide"]),
    (mutated(("blocks", 1, "args", "downsample"), "padding_free") | {}, None),  # valid: stride 2
    (mutated(("blocks", 0, "args", "downsample"), "padding_free"), ["block 0", "stride 2"]),
    (mutated(("blocks", 1), "ir"), ["block 1", "object"]),
    (mutated(("blocks", 1, "extra"), 1), ["block 1", "unknown key 'extra'"]),
    (mutated(("blocks",), {"op": "ir"}), ["blocks", "list"]),
    (mutated(("stem", "op"), "hp"), ["stem", "cannot be used as stem"]),
    (mutated(("head", "op"), "ir"), ["head", "cannot be used as head"]),
    (mutated(("blocks", 0, "op"), "hybrid"), ["block 0", "cannot be used as block"]),
    (mutated(("resolution",), 0), ["resolution", "> 0"]),
    (mutated(("resolution",), "224"), ["resolution", "integer"]),
    (mutated(("resolution",), 2) | {"blocks": [mutated(("blocks", 1, "args", "downsample"), "padding_free")["blocks"][1]]},
     ["block 0", "shrinks to nothing"]),
    (mutated(("num_classes",), DELETE), ["num_classes", "missing"]),
    (mutated(("version",), 99), ["version", "99", "newer litenas"]),
    (mutated(("version",), 0), ["version", "positive integer"]),
    (mutated(("version",), "1"), ["version", "positive integer"]),
    (mutated(("format",), "onnx"), ["format"]),
    (mutated(("depth",), 3), ["unknown field 'depth'"]),
    ([1, 2, 3], ["JSON object"]),
]


@pytest.mark.parametrize("data,needles", BAD_JSON, ids=[f"json{i}" for i in range(len(BAD_JSON))])
def test_malformed_json_is_rejected_with_a_clear_message(data, needles) -> None:
    if needles is None:
        Arch.from_dict(data)
        return
    with pytest.raises(ValueError) as info:
        Arch.from_dict(data)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_an_older_format_version_is_migrated_step_by_step() -> None:
    """The migration path (:mod:`nas.arch_migrations`): steps chain from a file's version to the
    current one; a missing or failing step is an error naming the version. Steps are passed in,
    as a format change would register them, without writing into the shipped table (empty while
    version 1 is the only format)."""
    from nas.arch_migrations import MIGRATIONS, upgrade

    assert dict(MIGRATIONS) == {} and upgrade(GOOD) == GOOD
    # Imagined history: version 1 named the ir field ``expansion``, version 2 wrote widths in a
    # ``width`` key; version 3 is today's.
    old = json.loads(json.dumps(GOOD))
    old["version"] = 1
    for b in old["blocks"]:
        b["args"]["width"] = b["args"].pop("out_chs")
        if b["op"] == "ir":
            b["args"]["expansion"] = b["args"].pop("exp_ratio")

    def v1_to_v2(d: dict) -> dict:
        blocks = [b | {"args": {("exp_ratio" if k == "expansion" else k): v for k, v in b["args"].items()}}
                  for b in d["blocks"]]
        return d | {"blocks": blocks}

    def v2_to_v3(d: dict) -> dict:
        return d | {"blocks": [b | {"args": {("out_chs" if k == "width" else k): v for k, v in b["args"].items()}}
                               for b in d["blocks"]]}

    migrated = upgrade(old, current=3, steps={1: v1_to_v2, 2: v2_to_v3})
    assert migrated["version"] == 3 and old["version"] == 1  # the input is left as it was
    assert Arch.from_dict(migrated | {"version": GOOD["version"]}) == Arch.from_dict(GOOD)
    with pytest.raises(ValueError, match="'version': no migration from version 2 to 3"):
        upgrade(old, current=3, steps={1: v1_to_v2})
    with pytest.raises(ValueError, match="'version': migrating a version-1 description failed"):
        upgrade(old, current=3, steps={1: lambda d: d["missing"], 2: v2_to_v3})
    with pytest.raises(ValueError, match="'version': 4 is from a newer litenas"):
        upgrade(old | {"version": 4}, current=3, steps={})


BAD_TEXT = [
    ("", ["empty"]),
    ("{\"resolution\": 32, ", ["not valid JSON"]),
    ("litenas/1 res32\nstem cn_c16\nhead hp", ["cls"]),
    ("litenas/9 res32 cls10\nstem cn_c16\nhead hp", ["header"]),
    ("litenas/1 res32 cls10 depth3\nstem cn_c16\nhead hp", ["depth3"]),
    ("litenas/1 res32 cls10\nds_c16\nhead hp", ["missing 'stem"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nds_c16", ["missing 'head"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nzz_c16\nhead hp", ["line 3", "unknown op 'zz'"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nds_c16_k4\nhead hp", ["line 3", "kernel", "odd"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nds_c16_q7\nhead hp", ["line 3", "'q7'"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nds_c16_c24\nhead hp", ["line 3", "given twice"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nds_cx\nhead hp", ["line 3", "integer"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nds_c16_s3\nhead hp", ["line 3", "stride"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nir_c16\nhead hp", ["line 3", "exp_ratio", "missing"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nhead hp\nds_c16", ["block after the head"]),
    ("litenas/1 res32 cls10\nstem cn_r2_c16\nhead hp", ["cannot repeat"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nds_c16 ds_c16\nhead hp", ["one block per line"]),
    ("litenas/1 res32 cls10\nstem cn_c16\nir_c16_e4_k3.5.7\nhead hp", ["block 0", "divide"]),
]


@pytest.mark.parametrize("text,needles", BAD_TEXT, ids=[f"str{i}" for i in range(len(BAD_TEXT))])
def test_malformed_strings_are_rejected_with_a_clear_message(text, needles) -> None:
    parse = Arch.from_json if text.startswith("{") else Arch.from_str
    with pytest.raises(ValueError) as info:
        parse(text)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_malformed_suite_is_large_enough() -> None:
    assert sum(1 for _, n in BAD_JSON if n) + len(BAD_TEXT) >= 30


def test_load_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        Arch.load(tmp_path / "missing.json")
    truncated = tmp_path / "trunc.json"
    truncated.write_text(small_arch().to_json()[:50])
    with pytest.raises(ValueError, match="trunc.json.*not valid JSON"):
        Arch.load(truncated)


def test_direct_block_construction_is_validated() -> None:
    bad = Block("ir", (("out_chs", 8),))
    with pytest.raises(ArchError, match="block 0"):
        small_arch(blocks=(bad,))
    with pytest.raises(ArchError, match="expected a Block"):
        small_arch(blocks=("ir_c8",))


# --------------------------------------------------------------------------------------------
# Property test: generated valid descriptions round-trip losslessly through JSON and strings.

channels = st.sampled_from([8, 16, 24, 32, 48])
kernels = st.one_of(st.sampled_from([1, 3, 5, 7]), st.sampled_from([(3, 5), (3, 5, 7, 9)]))


@st.composite
def blocks(draw):
    op = draw(st.sampled_from(["cn", "ds", "ir", "skip"]))
    stride = draw(st.sampled_from([1, 2]))
    out = draw(channels)
    if op == "cn":
        return B("cn", out_chs=out, kernel=draw(st.sampled_from([1, 3, 5])), stride=stride,
                 act=draw(st.sampled_from(["relu", "relu6", "hswish", "swish"])))
    if op == "skip":
        return B("skip", out_chs=out, stride=stride)
    common = dict(
        out_chs=out, kernel=draw(kernels), stride=stride,
        act=draw(st.sampled_from(["relu", "hswish", "swish"])),
        se_ratio=draw(st.sampled_from([0.0, 0.25, 0.5])),
        se_style=draw(st.sampled_from(["effnet", "mbv3", "ghost"])),
        noskip=draw(st.booleans()),
        downsample="padding_free" if stride == 2 and draw(st.booleans()) else "standard",
    )
    if op == "ds":
        return B("ds", pw_act=draw(st.booleans()), **common)
    groups = draw(st.sampled_from([1, 2]))
    return B("ir", exp_ratio=draw(st.sampled_from([1, 2.5, 3, 4, 6])), exp_groups=groups,
             proj_groups=groups, shuffle=groups > 1 and draw(st.booleans()), **common)


@st.composite
def archs(draw):
    body = draw(st.lists(blocks(), min_size=0, max_size=6))
    head = draw(st.one_of(
        st.builds(lambda c, d: B("hc", out_chs=c, dropout=d), channels, st.sampled_from([0.0, 0.2])),
        st.builds(lambda h: B("hp", hidden=h), st.sampled_from([0, 32])),
    ))
    stem = draw(st.one_of(st.builds(lambda c: B("cn", out_chs=c, stride=2), channels),
                          st.builds(lambda c: B("hybrid", out_chs=c), channels)))
    try:
        return Arch(resolution=draw(st.sampled_from([32, 64])), num_classes=draw(st.integers(1, 20)),
                    stem=stem, blocks=tuple(body), head=head)
    except ArchError:
        from hypothesis import reject

        reject()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(archs())
def test_generated_archs_roundtrip(arch: Arch) -> None:
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_str(arch.to_str()) == arch
    assert Arch.from_str(arch.to_str()).hash() == arch.hash()


def test_every_head_op_builds_the_head_protocol_and_a_stray_one_is_refused(monkeypatch) -> None:
    from dataclasses import replace

    from torch import nn

    from search_spaces import registry
    from search_spaces.registry import HeadModule

    heads = [name for name in op_names() if "head" in get_op(name).roles]
    assert heads
    for name in heads:
        required = {f.name: 16 for f in get_op(name).fields if f.required}  # every head's are widths
        arch = Arch(resolution=32, num_classes=7, stem=Block.make("cn", out_chs=8),
                    blocks=(), head=Block.make(name, required))
        model = build_model(arch)
        assert isinstance(model.head, HeadModule)
        model.reset_classifier(3)
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    spec = get_op("hc")
    monkeypatch.setitem(registry._REGISTRY, "hc", replace(spec, build=lambda ctx, a: nn.Identity()))
    with pytest.raises(TypeError, match="not a HeadModule"):
        build_model(Arch(resolution=32, num_classes=7, stem=Block.make("cn", out_chs=8), blocks=(),
                         head=Block.make("hc", out_chs=16)))
