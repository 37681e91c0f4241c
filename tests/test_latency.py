"""Latency tables: harness, table format, builder (resume), predictor, calibration, validation.

Small configurations and short sampling only; no assertion depends on how fast anything runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import latency_tables
from latency_tables import build as build_mod
from latency_tables.build import build_table, unique_configs
from latency_tables.measure import (
    Settings,
    combine_passes,
    measure_archs,
    measure_module,
    measure_modules,
    measure_ops,
    median_ci_halfwidth,
    summarise,
)
from latency_tables.predict import (
    METHODS,
    LatencyPredictor,
    features,
    fit,
    fit_calibration,
    op_control,
    predict_from,
)
from latency_tables.table import (
    TABLE_FORMAT,
    Calibration,
    LatencyTable,
    MissingKeyError,
    TableError,
    TableMismatchWarning,
    Timing,
)
from latency_tables.validate import metrics, plot_report, repeatability, validate
from nas.arch import Arch, Block
from nas.builder import build_model

FAST = Settings(warmup=1, min_repeats=3, max_repeats=6, max_seconds=0.5, per_round=2)


def tiny_arch(width: int = 8, kernel: int = 3, exp: float = 3.0, res: int = 16) -> Arch:
    return Arch(
        resolution=res, num_classes=10,
        stem=Block.make("cn", out_chs=8, stride=2),
        blocks=(Block.make("ir", out_chs=width, exp_ratio=exp, kernel=kernel),
                Block.make("ir", out_chs=16, stride=2, kernel=kernel, exp_ratio=exp)),
        head=Block.make("hc", out_chs=32),
    )


def table_for(archs: list[Arch], settings: Settings = FAST, path: Path | None = None) -> LatencyTable:
    configs = unique_configs(c for a in archs for c in a.op_configs())
    table = LatencyTable.new(settings.identity(), resolution=archs[0].resolution, harness=settings.harness(),
                             space="tiny")
    for cfg, t in zip(configs, measure_ops(configs, settings), strict=True):
        table.add(cfg.key(), t)
    if path is not None:
        table.save(path)
    return table


def fake_timing(ms: float = 1.0) -> Timing:
    return Timing(ms, 0.9 * ms, 1.1 * ms, 5)


# ---------------------------------------------------------------------------------------------
# Harness


@pytest.mark.parametrize("kwargs, word", [
    ({"device": "tpu"}, "device"),
    ({"backend": "tvm"}, "backend"),
    ({"dtype": "int8"}, "dtype"),
    ({"threads": 0}, "threads"),
    ({"min_repeats": 10, "max_repeats": 5}, "max_repeats"),
    ({"clock": "cpu", "threads": 2}, "clock"),
    ({"clock": "sundial"}, "clock"),
    ({"cache": "lukewarm"}, "cache"),
    ({"max_seconds": 0}, "max_seconds"),
])
def test_settings_reject_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Settings(**kwargs)


def test_settings_identity_and_harness_split():
    s = Settings(threads=1, clock="cpu")
    assert set(s.identity()) | set(s.harness()) == set(s.__dataclass_fields__)
    assert s.identity()["clock"] == "cpu" and "warmup" in s.harness()


def test_summarise_and_ci():
    t = summarise([0.001, 0.002, 0.003, 0.004, 0.005])
    assert t.median_ms == pytest.approx(3.0) and t.n == 5
    assert t.p10_ms <= t.median_ms <= t.p90_ms
    assert median_ci_halfwidth([1.0] * 50) == 0.0
    assert median_ci_halfwidth([1.0, 2.0]) == float("inf")
    with pytest.raises(ValueError):
        summarise([])


@pytest.mark.parametrize("backend", ["eager", "torchscript"])
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_measure_module_backends(backend, cache):
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    s = Settings(backend=backend, cache=cache, warmup=1, min_repeats=4, max_repeats=4)
    t = measure_module(conv, (1, 4, 8, 8), s)
    assert t.n == 4 and 0 < t.p10_ms <= t.median_ms <= t.p90_ms


def test_onnxruntime_harness_measures_the_graph_nas_export_writes(tmp_path, monkeypatch):
    """An ONNX Runtime table predicts what ``nas export --format onnx`` ships: the harness hands
    onnxruntime the graph the exporter writes (same writer, opset, names and dynamic batch axis)."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import onnxruntime

    from nas.export import export

    arch = tiny_arch()
    export(arch, "onnx", tmp_path / "net.onnx", check=False)
    seen: list[bytes] = []
    session = onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda model, *a, **k: seen.append(model) or session(model, *a, **k))
    measure_module(build_model(arch).eval(), (1, 3, 16, 16),
                   Settings(backend="onnxruntime", warmup=1, min_repeats=2, max_repeats=2))

    def structure(model) -> tuple:
        g = model.graph
        return (tuple((n.op_type, tuple(n.input), tuple(n.output), tuple(str(a) for a in n.attribute)) for n in g.node),
                tuple(str(v.type) for v in (*g.input, *g.output)), tuple(str(o) for o in model.opset_import))

    (measured,) = seen
    assert structure(onnx.load_from_string(measured)) == structure(onnx.load(str(tmp_path / "net.onnx")))


def test_measure_module_onnxruntime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    t = measure_module(conv, (1, 4, 8, 8), Settings(backend="onnxruntime", warmup=1, min_repeats=3, max_repeats=3))
    assert t.n == 3


def test_measure_cpu_clock_channels_last_and_thread_restore():
    before = torch.get_num_threads()
    s = Settings(clock="cpu", channels_last=True, warmup=1, min_repeats=3, max_repeats=5, per_round=2)
    timings = measure_modules([(torch.nn.Conv2d(4, 4, 3), (1, 4, 8, 8)), (torch.nn.ReLU(), (2, 4, 8, 8))], s)
    assert [3 <= t.n <= 5 for t in timings] == [True, True]
    assert torch.get_num_threads() == before


def test_measure_ops_and_archs():
    arch = tiny_arch()
    ts = measure_ops(arch.op_configs(), FAST)
    assert len(ts) == len(arch.op_configs()) and all(t.n >= FAST.min_repeats for t in ts)
    (whole,) = measure_archs([arch], FAST, progress=False)
    assert whole.median_ms > 0


def test_measure_archs_takes_medians_over_passes():
    """Every network is timed once per pass; its figures are the medians over passes, so one
    disturbed pass (here the slowest) does not move them."""
    archs = [tiny_arch(), tiny_arch().replace(resolution=24)]
    timings = measure_archs(archs, FAST, passes=3, progress=False)
    assert [FAST.min_repeats * 3 <= t.n <= FAST.max_repeats * 3 for t in timings] == [True, True]
    quiet, burst = Timing(1.0, 0.9, 1.1, 10), Timing(5.0, 4.0, 6.0, 10)
    assert combine_passes([quiet, burst, quiet]) == Timing(1.0, 0.9, 1.1, 30)
    with pytest.raises(ValueError, match="passes must be >= 1"):
        measure_archs(archs, FAST, passes=0)


# ---------------------------------------------------------------------------------------------
# Table format


def test_table_roundtrip(tmp_path):
    table = table_for([tiny_arch()], path=tmp_path / "t.json")
    again = LatencyTable.load(tmp_path / "t.json")
    assert again.entries == table.entries
    assert again.meta["resolution"] == 16 and again.meta["space"] == "tiny"
    assert again.settings_identity() == FAST.identity()
    key = tiny_arch().op_configs()[1].key()
    assert again.get(key) == table.get(key)
    assert not list(tmp_path.glob(".*tmp")), "atomic write left a temp file"


def _valid_dict() -> dict:
    table = LatencyTable.new(FAST.identity(), resolution=16)
    table.add("cn|3x16x16|x", fake_timing())
    return table.to_dict()


def _corrupt(data: dict, how: str) -> str:
    if how == "truncated":
        return json.dumps(data)[:-40]
    if how == "empty":
        return ""
    if how == "not_json":
        return "hello"
    if how == "list":
        return "[]"
    if how == "foreign":
        return json.dumps({"format": "litenas.arch", "version": 1})
    if how == "version":
        data["version"] = 99
    elif how == "no_entries":
        del data["entries"]
    elif how == "no_meta_field":
        del data["meta"]["threads"]
    elif how == "meta_type":
        data["meta"]["threads"] = "one"
    elif how == "entry_missing_field":
        del data["entries"]["cn|3x16x16|x"]["p90_ms"]
    elif how == "entry_negative":
        data["entries"]["cn|3x16x16|x"]["median_ms"] = -1.0
    elif how == "entry_order":
        data["entries"]["cn|3x16x16|x"]["p10_ms"] = 5.0
    elif how == "entry_n":
        data["entries"]["cn|3x16x16|x"]["n"] = 0
    elif how == "calibration":
        data["calibration"] = {"method": "linear"}
    elif how == "calibration_feature":
        data["calibration"] = {"method": "x", "coef": {"sum": 1.0, "moon_phase": 2.0}, "fit_mape": 1.0}
    return json.dumps(data)


@pytest.mark.parametrize("how, words", [
    ("truncated", "truncated"), ("empty", "empty"), ("not_json", "not valid JSON"), ("list", "JSON object"),
    ("foreign", "not a litenas latency table"), ("version", "unsupported table version"),
    ("no_entries", "'entries' missing"), ("no_meta_field", "'threads' missing"), ("meta_type", "'threads'"),
    ("entry_missing_field", "'p90_ms' missing"), ("entry_negative", "'median_ms'"),
    ("entry_order", "p10_ms <= median_ms"), ("entry_n", "'n'"), ("calibration", "calibration"),
    ("calibration_feature", "unknown feature 'moon_phase'"),
])
def test_bad_table_files_are_rejected(tmp_path, how, words):
    path = tmp_path / "bad.json"
    path.write_text(_corrupt(_valid_dict(), how), encoding="utf-8")
    with pytest.raises(TableError) as info:
        LatencyTable.load(path)
    assert str(path) in str(info.value) and words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_is_a_table_error(tmp_path):
    with pytest.raises(TableError, match="no such"):
        LatencyTable.load(tmp_path / "absent.json")


def test_foreign_device_or_torch_warns(tmp_path):
    data = _valid_dict()
    data["meta"]["device_name"] = "Imaginary NPU 9000"
    data["meta"]["torch"] = "0.0.1"
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.warns(TableMismatchWarning, match="Imaginary NPU 9000") as record:
        LatencyTable.load(path)
    assert "0.0.1" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LatencyTable.load(path, check_env=False)
        path.write_text(json.dumps(_valid_dict()), encoding="utf-8")
        LatencyTable.load(path)  # measured here: no warning


# ---------------------------------------------------------------------------------------------
# Builder


@pytest.mark.parametrize("stop, checkpoint_seconds", [
    (SystemExit, 0.0),  # a hard stop: only the checkpoints survive
    (KeyboardInterrupt, 1e9),  # Ctrl-C: what was measured since the last checkpoint is saved too
])
def test_build_measures_each_key_once_and_resumes_after_interruption(tmp_path, monkeypatch, stop,
                                                                     checkpoint_seconds):
    archs = [tiny_arch(), tiny_arch(width=16), tiny_arch(kernel=5)]
    configs = [c for a in archs for c in a.op_configs()]
    wanted = {c.key() for c in configs}
    out = tmp_path / "table.json"
    calls: list[list[str]] = []

    def flaky(chunk, settings, **control):
        if len(calls) == 2:
            raise stop  # stopped while measuring the third group
        calls.append([c.key() for c in chunk])
        return [fake_timing(1.0 + i) for i in range(len(chunk))]

    monkeypatch.setattr(build_mod, "measure_ops", flaky)
    with pytest.raises(stop):
        build_table(configs, out, FAST, resolution=16, sources=["space:tiny"], meta={"space": "tiny"},
                    interleave=3, checkpoint_seconds=checkpoint_seconds, progress=False)
    saved = LatencyTable.load(out)  # a complete, valid table
    assert set(saved.entries) == set(calls[0] + calls[1]) and len(saved) == 6

    resumed: list[str] = []

    def counting(chunk, settings, **control):
        resumed.extend(c.key() for c in chunk)
        return [fake_timing() for _ in chunk]

    monkeypatch.setattr(build_mod, "measure_ops", counting)
    table = build_table(configs, out, FAST, resolution=16, sources=["space:tiny"], meta={"space": "tiny"},
                        interleave=3, checkpoint_seconds=0, progress=False)
    assert set(resumed) == wanted - set(saved.entries) and len(resumed) == len(set(resumed))
    assert set(LatencyTable.load(out).entries) == wanted == set(table.entries)
    assert table.meta["space"] == "tiny" and table.meta["sources"] == ["space:tiny"]

    resumed.clear()
    build_table(configs, out, FAST, resolution=16, progress=False)
    assert resumed == []  # nothing left to measure


def test_a_build_times_its_ops_beside_a_control_and_resumes_in_the_same_units(tmp_path, monkeypatch):
    """A machine 25% slower at every group of ops: with the drift control every entry reads at the
    speed the build began with (the ops compare exactly), a resumed build scales to the same
    recorded anchor, and an op measured later for a search lands in those units too; without the
    control the entries drift with the machine."""
    from latency_tables import measure
    from search_spaces.registry import OpConfig

    archs = [tiny_arch(width=w) for w in (8, 16, 24)]
    configs = unique_configs(c for a in archs for c in a.op_configs())
    skips = [OpConfig.from_key(f"skip|{w}x16x16|out_chs={w}") for w in (8, 16, 24, 32, 40)]
    assert measure.control_op([*skips, configs[1]]) == configs[1]  # never a parameter-free op
    base = {c.key(): 0.1 * (1 + i) for i, c in enumerate(configs)}
    groups: list[int] = []

    class Tagged(torch.nn.Module):  # stands for the op: its key, one weight
        def __init__(self, key: str):
            super().__init__()
            self.key, self.w = key, torch.nn.Parameter(torch.zeros(1))

    def drifting(items, settings):
        groups.append(len(items))
        slow = 1 + 0.25 * len(groups)
        return [Timing(base[m.key] * slow, base[m.key] * slow, base[m.key] * slow, 1) for m, _ in items]

    monkeypatch.setattr(OpConfig, "build", lambda self: Tagged(self.key()))
    monkeypatch.setattr(measure, "measure_modules", drifting)
    first, rest = configs[:6], configs[6:]
    out = tmp_path / "t.json"
    table = build_table(first, out, FAST, resolution=16, interleave=2, progress=False)
    control = measure.control_op(first)
    assert table.meta["op_control"] == {"key": control.key(), "ms": pytest.approx(base[control.key()] * 1.5)}
    ratios = [table.get(c.key()).median_ms / base[c.key()] for c in first]
    assert groups[:3] == [1, 1, 1] and max(ratios) == pytest.approx(min(ratios)) == pytest.approx(1.5)
    table = build_table(configs, out, FAST, resolution=16, interleave=2, progress=False)  # resumed, slower now
    assert LatencyTable.load(out).meta["op_control"] == table.meta["op_control"]
    assert all(table.get(c.key()).median_ms / base[c.key()] == pytest.approx(1.5) for c in rest)
    missing = rest[0].key()
    del table.entries[missing]
    LatencyPredictor(table, measure_missing=True)._fill_missing(next(a for a in archs if rest[0] in a.op_configs()))
    assert table.get(missing).median_ms == pytest.approx(base[missing] * 1.5)
    plain = build_table(configs, tmp_path / "plain.json", FAST, resolution=16, interleave=2, progress=False,
                        control=False)
    raw = [plain.get(c.key()).median_ms / base[c.key()] for c in configs]
    assert "op_control" not in plain.meta and max(raw) > 1.2 * min(raw)
    broken = LatencyTable({**plain.meta, "op_control": {"key": control.key(), "ms": 0}}, plain.entries)
    with pytest.raises(ValueError, match="meta op_control is not a control op and its time .ms must be"):
        op_control(broken)


def test_build_real_measurement_with_limit(tmp_path):
    configs = tiny_arch().op_configs()
    out = tmp_path / "t.json"
    table = build_table(configs, out, FAST, resolution=16, limit=2, progress=False)
    assert len(table) == 2 == len(LatencyTable.load(out))
    table = build_table(configs, out, FAST, resolution=16, progress=False)
    assert set(table.entries) == {c.key() for c in configs}


def test_build_refuses_to_mix_settings(tmp_path):
    out = tmp_path / "t.json"
    table_for([tiny_arch()], path=out)
    with pytest.raises(ValueError, match="threads 1 \\(asked 2\\)"):
        build_table(tiny_arch().op_configs(), out, Settings(threads=2), resolution=16, progress=False)
    with pytest.raises(ValueError, match="resolution 16 \\(asked 32\\)"):
        build_table(tiny_arch().op_configs(), out, FAST, resolution=32, progress=False)
    with pytest.raises(ValueError, match="built for space 'tiny' \\(asked 'other'\\)"):
        build_table(tiny_arch().op_configs(), out, FAST, resolution=16, meta={"space": "other"}, progress=False)


# ---------------------------------------------------------------------------------------------
# Predictor and calibration


def test_missing_key_names_itself():
    arch = tiny_arch()
    table = table_for([arch])
    other = tiny_arch(kernel=5)
    predictor = LatencyPredictor(table)
    missing = next(c.key() for c in other.op_configs() if c.key() not in table)
    with pytest.raises(MissingKeyError) as info:
        predictor.predict(other)
    assert missing in str(info.value)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(MissingKeyError, match="32px"):
        predictor.predict(tiny_arch(res=32))


def test_measure_missing_adds_entries():
    table = table_for([tiny_arch()])
    predictor = LatencyPredictor(table, measure_missing=True)
    before = len(table)
    assert predictor.predict(tiny_arch(kernel=5)) > 0
    assert predictor.added == len(table) - before > 0


def test_predict_sums_medians_then_calibrates():
    arch = tiny_arch()
    table = LatencyTable.new(FAST.identity(), resolution=16)
    for i, cfg in enumerate(arch.op_configs()):
        table.add(cfg.key(), fake_timing(float(i + 1)))
    n = len(arch.op_configs())
    predictor = LatencyPredictor(table)
    assert predictor.op_sum(arch) == predictor.predict(arch) == n * (n + 1) / 2
    table.calibration = Calibration("full", {"sum": 2.0, "n_ops": 0.5, "mparams": 3.0, "const": 1.0}, 0.0)
    mparams = sum(p.numel() for p in build_model(arch).parameters()) / 1e6
    assert predictor.features(arch)["mparams"] == pytest.approx(mparams)
    assert predictor.predict(arch) == pytest.approx(2.0 * n * (n + 1) / 2 + 0.5 * n + 3.0 * mparams + 1.0)


def test_fit_recovers_known_models():
    rng = np.random.default_rng(0)
    feats = [features(s, n) for s, n in zip(rng.uniform(5, 50, 20), rng.integers(10, 30, 20), strict=True)]
    lin = [1.1 * f["sum"] + 0.5 for f in feats]
    f = fit("linear", feats, lin)
    assert f.coef["sum"] == pytest.approx(1.1) and f.coef["const"] == pytest.approx(0.5) and f.fit_mape < 1e-9
    per_op = [f["sum"] + 0.02 * f["n_ops"] + 0.3 for f in feats]
    f = fit("per_op", feats, per_op)
    assert f.coef == pytest.approx({"sum": 1.0, "n_ops": 0.02, "const": 0.3})
    for f, m in zip(feats, rng.uniform(1, 9, 20), strict=True):
        f["mparams"] = m
    weights = [f["sum"] + 0.25 * f["mparams"] + 0.1 for f in feats]
    assert fit("weights", feats, weights).coef == pytest.approx({"sum": 1.0, "mparams": 0.25, "const": 0.1})
    cal = fit_calibration(feats, lin, "auto")
    assert cal.method in ("linear", "full") and cal.loo_mape["linear"] < 1e-6
    assert set(cal.loo_mape) == set(METHODS)
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibration(feats, lin, "magic")


def test_calibration_never_keeps_a_model_that_predicts_a_fitted_network_at_or_under_zero(monkeypatch):
    """Few, noisy networks can make a model extrapolate below zero; the table would then be refused
    on load. ``auto`` skips such a model, a named one is refused with what to do."""
    from latency_tables import predict

    feats = [features(s, 10) for s in (1.0, 2.0, 3.0, 20.0)]
    measured = [8.0, 6.0, 4.0, 1.0]  # slower the smaller: "offset" fits -15.9 ms for the first
    assert predict_from(fit("offset", feats, measured).coef, feats[0]) < 0
    with pytest.raises(ValueError, match="method 'offset' predicts <= 0 ms for a network it was fitted on"):
        fit_calibration(feats, measured, "offset")
    real = predict._loo_mape
    monkeypatch.setattr(predict, "_loo_mape", lambda m, *a, **k: 0.0 if m == "offset" else real(m, *a, **k))
    cal = fit_calibration(feats, measured, "auto")  # offset scores best, and is passed over
    assert cal.method != "offset" and all(predict_from(cal.coef, f) > 0 for f in feats)


# ---------------------------------------------------------------------------------------------
# Validation figures and report


def test_metrics_shares():
    m = metrics([1.0, 1.04, 1.08, 1.5], [1.0, 1.0, 1.0, 1.0])
    assert m["within_5pct"] == 0.5 and m["within_10pct"] == 0.75
    assert m["mape_pct"] == pytest.approx((0 + 4 + 8 + 50) / 4)


def test_drift_control_takes_out_a_machine_that_slows_down(monkeypatch):
    """Each group is timed beside the control; a machine 25% slower at every group must not change
    how the networks compare (without the control it does)."""
    from latency_tables import measure

    archs = [tiny_arch(width=w) for w in (8, 16, 24, 32, 40)]
    base = {a.hash(): 1.0 + i for i, a in enumerate(archs)}
    groups: list[int] = []

    def drifting(items, settings):
        groups.append(len(items))
        slow = 1 + 0.25 * len(groups)
        return [Timing(b * slow, b * slow, b * slow, 1) for b, _ in items]

    monkeypatch.setattr(measure, "build_model", lambda arch: base[arch.hash()])
    monkeypatch.setattr(measure, "measure_modules", drifting)
    seen: list[float] = []
    got = measure.measure_archs(archs, FAST, chunk=2, passes=1, progress=False, control_ms=seen)
    ratios = [t.median_ms / base[a.hash()] for t, a in zip(got, archs, strict=True)]
    assert max(ratios) == pytest.approx(min(ratios))
    control = base[measure.control_arch(archs).hash()]
    assert groups == [3, 3, 2] and seen == pytest.approx([control * 1.25, control * 1.5, control * 1.75])
    groups.clear()
    raw = measure.measure_archs(archs, FAST, chunk=2, passes=1, progress=False, control=False)
    raw_ratios = [t.median_ms / base[a.hash()] for t, a in zip(raw, archs, strict=True)]
    assert groups == [2, 2, 1] and max(raw_ratios) == pytest.approx(1.4 * min(raw_ratios))


def test_a_table_records_its_control_and_is_validated_in_its_units(tmp_path, monkeypatch):
    """Calibrated while the machine ran at one speed, validated while it runs half as fast: with
    the recorded reference the networks read as they did then, and the report says how much
    slower the machine is now."""
    from latency_tables import measure
    from latency_tables.predict import calibrate

    archs = [tiny_arch(width=w) for w in (8, 16, 24, 32, 40)]
    base = {a.hash(): 1.0 + i for i, a in enumerate(archs)}
    table = table_for(archs, path=tmp_path / "t.json")
    slowness = [1.0]
    monkeypatch.setattr(measure, "build_model", lambda arch: base[arch.hash()])
    monkeypatch.setattr(measure, "measure_modules",
                        lambda items, settings: [Timing(b * slowness[0], b * slowness[0], b * slowness[0], 1)
                                                 for b, _ in items])
    cal = calibrate(table, archs, method="linear", passes=1, progress=False)
    control = measure.control_arch(archs)
    assert cal.reference == {"arch": control.to_str(), "ms": base[control.hash()]}
    table.save()
    assert LatencyTable.load(tmp_path / "t.json").calibration.reference == cal.reference
    slowness[0] = 2.0
    report = validate(table, archs, passes=1, progress=False)
    assert [r["measured_ms"] for r in report["records"]] == pytest.approx([base[a.hash()] for a in archs])
    assert report["drift"]["table_units"] and report["drift"]["speed_vs_table"] == pytest.approx(0.5)
    bad = {**cal.to_dict(), "reference": {"arch": control.to_str(), "ms": -1.0}}
    with pytest.raises(TableError, match="reference ms must be a positive number"):
        Calibration.from_dict(bad, "t.json")
    plain = validate(table, archs, passes=1, progress=False, control=False)
    assert [r["measured_ms"] for r in plain["records"]] == pytest.approx([2 * base[a.hash()] for a in archs])
    assert plain["drift"] is None
    # `nas latency check` times the same control: the machine's speed apart from the table's fit
    from latency_tables import check as table_check

    monkeypatch.setattr(table_check, "run_probe", lambda table: {})
    result = table_check.check(table, networks=0)
    assert result["table_units"] and result["control_drift_pct"] == pytest.approx(100.0)
    assert result["recorded_networks"] == 3 and result["recorded_drift_pct"] == pytest.approx(0.0)
    assert not result["fits"] and "its control network takes +100.0%" in table_check.verdict_line(result)
    slowness[0] = 1.05
    assert table_check.check(table, networks=0)["fits"]


def test_repeatability_shares_and_spread():
    recs = [{"rounds_ms": [10.0, 10.4]}, {"rounds_ms": [10.0, 12.5]}, {"rounds_ms": [8.0, 8.0, 8.6]}, {"measured_ms": 3.0}]
    r = repeatability(recs)
    # spreads (slowest / fastest - 1): 4%, 25%, 7.5%; last over first: 1.04, 1.25, 1.075
    assert r["n"] == 3 and r["rounds"] == 2
    assert r["within_5pct"] == pytest.approx(1 / 3) and r["within_10pct"] == pytest.approx(2 / 3)
    assert r["max_spread_pct"] == pytest.approx(25.0) and r["median_spread_pct"] == pytest.approx(7.5)
    assert r["last_over_first"] == pytest.approx(1.075)
    assert repeatability([{"measured_ms": 1.0}]) == {"n": 0}


def test_validate_rounds_compare_with_the_median_of_rounds():
    archs = [tiny_arch(), tiny_arch(width=16)]
    table = table_for(archs)
    report = validate(table, archs, harness=FAST.harness(), passes=1, rounds=3, progress=False)
    for rec in report["records"]:
        assert len(rec["rounds_ms"]) == 3 and rec["measured_ms"] == pytest.approx(float(np.median(rec["rounds_ms"])))
    assert report["repeatability"]["random"]["n"] == 2 and report["repeatability"]["fixed_points"] == {"n": 0}
    assert report["harness"]["rounds"] == 3
    assert len(report["metrics_per_round"]) == 3 and report["metrics_per_round"][0]["random"]["n"] == 2
    single = validate(table, archs[:1], harness=FAST.harness(), passes=1, progress=False)
    assert "rounds_ms" not in single["records"][0] and single["repeatability"]["random"] == {"n": 0}
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        validate(table, archs, rounds=0, progress=False)


def test_validate_report_and_plot(tmp_path):
    archs = [tiny_arch(), tiny_arch(width=16), tiny_arch(kernel=5)]
    fixed = {"tiny_fixed": tiny_arch(exp=6.0)}
    table = table_for(archs)
    report = validate(table, archs, fixed_points=fixed, measure_missing=True, harness=FAST.harness(),
                      progress=False)
    assert report["metrics"]["n"] == 3 and report["metrics_fixed_points"]["n"] == 1
    assert report["ops_measured_on_the_spot"] > 0
    assert {r["kind"] for r in report["records"]} == {"random", "zoo"}
    json.dumps(report)
    png = plot_report(report, tmp_path / "v.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# Shipped tables, command line, target-device imports


def test_loader_and_list(tmp_path, monkeypatch):
    monkeypatch.setattr(latency_tables, "_package_dir", lambda: tmp_path)
    assert latency_tables.names() == [] and latency_tables.list_tables() == []
    table_for([tiny_arch()], path=tmp_path / "tiny_16_cpu.json")
    report = {"format": "litenas.latency_validation", "metrics": {"n": 3, "mape_pct": 2.0}}
    (tmp_path / "tiny_16_cpu.validation.json").write_text(json.dumps(report), encoding="utf-8")
    (tmp_path / "broken.json").write_text('{"format": "' + TABLE_FORMAT + '", "ver', encoding="utf-8")
    assert latency_tables.names() == ["broken", "tiny_16_cpu"]
    assert len(latency_tables.load("tiny_16_cpu")) == len(tiny_arch().op_configs())
    recs = {r["name"]: r for r in latency_tables.list_tables()}
    assert recs["tiny_16_cpu"]["validation"]["mape_pct"] == 2.0 and recs["tiny_16_cpu"]["resolution"] == 16
    assert "truncated" in recs["broken"]["error"]
    with pytest.raises(TableError, match="broken.json"):
        latency_tables.load("broken")
    with pytest.raises(ValueError, match="no shipped latency table named 'nope'; shipped: broken, tiny_16_cpu"):
        latency_tables.load("nope")


def test_cli_build_zoo_resumes_and_lists(tmp_path, capsys):
    from nas.cli import main

    out = tmp_path / "zoo32.json"
    args = ["latency", "build", "--zoo", "--resolution", "32", "--out", str(out), "--limit", "2",
            "--warmup", "1", "--min-repeats", "3", "--max-repeats", "3", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["entries"] == 2 and first["still_missing"] == first["ops_wanted"] - 2
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 4
    assert main(["latency", "list", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert main(["latency", "build", "--resolution", "32", "--out", str(out)]) == 2
    assert "--space" in capsys.readouterr().err


def test_cli_space_build_calibrate_validate(tmp_path, capsys):
    from nas.cli import main

    table = tmp_path / "fb.json"
    fast = ["--warmup", "1", "--min-repeats", "3", "--max-repeats", "3"]
    assert main(["latency", "build", "--space", "fbnet", "--resolution", "32", "--out", str(table),
                 "--limit", "3", *fast]) == 0
    assert "3 entries (110 wanted, 107 still missing)" in capsys.readouterr().out
    assert main(["latency", "calibrate", "--table", str(table), "-n", "3", "--measure-missing", "--json",
                 *fast]) == 0
    cal = json.loads(capsys.readouterr().out)
    assert cal["method"] in METHODS and set(cal["loo_mape"]) == set(METHODS)
    assert main(["latency", "validate", "--table", str(table), "-n", "3", "--seed", "0", "--measure-missing",
                 "--json", *fast]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["metrics"]["n"] == 3 and Path(summary["plot"]).exists()
    report = json.loads(Path(summary["report"]).read_text(encoding="utf-8"))
    assert report["space"] == "fbnet" and len(report["records"]) == 3
    assert LatencyTable.load(table).calibration is not None
    # a validation that meets an op the table lacks names it, unless told to measure it
    assert main(["latency", "validate", "--table", str(table), "-n", "3", "--seed", "5", "--no-plot", *fast]) == 2
    assert "latency table has no entry for op" in capsys.readouterr().err


def test_target_device_needs_no_optuna_ray_ptflops(tmp_path):
    """The builder runs with Optuna, Ray and ptflops unimportable (a target device)."""
    out = tmp_path / "t.json"
    code = f"""
import sys
for name in ("optuna", "ray", "ptflops"):
    sys.modules[name] = None
import latency_tables, latency_tables.cli
import nas.cli.latency
rc = latency_tables.cli.main(["build", "--space", "fbnet", "--zoo", "--resolution", "32", "--out", {str(out)!r},
                              "--limit", "1", "--warmup", "0", "--min-repeats", "2", "--max-repeats", "2"])
assert rc == 0, rc
assert latency_tables.cli.main(["list", "--json"]) == 0
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(LatencyTable.load(out)) == 1
    help_ = subprocess.run([sys.executable, "-m", "latency_tables", "build", "--help"], capture_output=True,
                           text=True, timeout=60)
    assert help_.returncode == 0 and "--resolution" in help_.stdout
