"""Latency tables on another device: per-op-class calibration, stratified sampling, op keys read
back, ``nas latency adapt`` and ``nas latency check``.

Short sampling only; no assertion depends on how fast this machine is, only on what the fits
recover from data whose model is known, or on a table distorted on purpose.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from latency_tables.adapt import adapt
from latency_tables.build import unique_configs
from latency_tables.check import check, probe_configs, recorded_networks
from latency_tables.measure import Settings, measure_ops
from latency_tables.predict import (
    METHODS,
    LatencyPredictor,
    features,
    fit,
    fit_calibration,
    loo_predictions,
    source_units,
)
from latency_tables.sampling import sample_archs, stratified_archs
from latency_tables.table import Calibration, LatencyTable, TableError, Timing, op_class
from search_spaces.registry import OpConfig

FAST = Settings(warmup=1, min_repeats=3, max_repeats=5, max_seconds=0.2, per_round=2)
FAST_FLAGS = ["--warmup", "1", "--min-repeats", "3", "--max-repeats", "5", "--max-seconds", "0.2"]


def _class_feats(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    """Networks made of two op classes in varying proportions."""
    out = []
    for _ in range(n):
        a, b = rng.uniform(1, 10), rng.uniform(1, 10)
        out.append(features(a + b, int(rng.integers(10, 30)), 0, {"ir@8": a, "cn@32": b}))
    return out


def test_per_class_fit_recovers_class_scales_that_a_global_scale_cannot():
    rng = np.random.default_rng(0)
    feats = _class_feats(rng, 30)
    measured = [1.6 * f["sum:ir@8"] + 0.6 * f["sum:cn@32"] + 0.3 for f in feats]
    cal = fit_calibration(feats, measured, "auto")
    assert cal.method == "per_class" and cal.ridge is not None
    assert cal.loo_mape["per_class"] < 0.5 * cal.loo_mape["full"]  # one scale for both classes cannot fit
    scale = {k: cal.coef["sum"] + cal.coef[f"sum:{k}"] for k in ("ir@8", "cn@32")}
    assert scale["ir@8"] > 1.3 and scale["cn@32"] < 0.9
    # the ridge pulls the class deviations toward zero: a huge penalty leaves one global scale
    stiff = fit("per_class", feats, measured, ridge=1e6)
    assert abs(stiff.coef["sum:ir@8"]) < 1e-3 and abs(stiff.coef["sum:cn@32"]) < 1e-3
    assert len(loo_predictions("per_class", feats, measured, ridge=cal.ridge)) == 30


def test_per_class_is_left_out_where_one_scale_does():
    rng = np.random.default_rng(1)
    feats = _class_feats(rng, 25)
    measured = [1.2 * f["sum"] + 0.5 for f in feats]
    cal = fit_calibration(feats, measured, "auto")
    assert cal.loo_mape["linear"] < 1e-6 and set(cal.loo_mape) == set(METHODS)
    assert cal.coef["sum"] == pytest.approx(1.2, rel=1e-3)


def test_op_class_buckets():
    assert [op_class("ir", s) for s in (1, 4, 5, 8, 16, 32, 33, 112)] == [
        "ir@4", "ir@4", "ir@8", "ir@8", "ir@16", "ir@32", "ir@big", "ir@big"]


def test_calibration_reads_class_coefficients_and_refuses_bad_ones(tmp_path):
    cal = Calibration("per_class", {"sum": 1.0, "sum:ir@8": 0.5, "const": 0.1}, 1.0, ridge=0.1,
                      records=[{"hash": "x", "n_ops": 3, "sum_ms": 2.0, "class_sums": {"ir@8": 1.0}}])
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())), "t.json")
    assert back == cal
    assert back.predict({"sum": 2.0, "const": 1.0}) == pytest.approx(2.1)  # a class the network lacks counts 0
    assert back.op_cost("ir@8", 2.0, 0.0) == pytest.approx(3.0) and back.constant == pytest.approx(0.1)
    for bad in ({"sum:": 1.0}, {"speed": 1.0}):
        with pytest.raises(TableError, match="unknown feature"):
            Calibration.from_dict({**cal.to_dict(), "coef": {"sum": 1.0, **bad}, "records": []}, "t.json")


def test_op_keys_read_back():
    arch = sample_archs("mobile", 32, 3, 0, 10)[0]
    for cfg in arch.op_configs():
        assert OpConfig.from_key(cfg.key()) == cfg
    with pytest.raises(ValueError, match="not a latency-table key"):
        OpConfig.from_key("ir|16x8x8|out_chs=16,bogus=1")
    with pytest.raises(ValueError, match="not a latency-table key"):
        OpConfig.from_key("nope")


def test_stratified_sampling_spans_the_range_and_is_reproducible():
    def cost(arch):
        return float(sum(c.in_chs * c.in_size ** 2 for c in arch.op_configs()))

    picked = stratified_archs("mobile", 32, 8, 4, cost, 10, pool=10)
    pool = sample_archs("mobile", 32, 80, 4, 10)
    assert len({a.hash() for a in picked}) == 8
    costs = sorted(cost(a) for a in picked)
    assert costs[0] == min(map(cost, pool)) and costs[-1] == max(map(cost, pool))
    assert [a.hash() for a in stratified_archs("mobile", 32, 8, 4, cost, 10, pool=10)] == [a.hash() for a in picked]


@pytest.fixture(scope="module")
def small_table() -> tuple[LatencyTable, list]:
    """A table of every op of 10 small ``mobile``@32 networks, measured here."""
    archs = sample_archs("mobile", 32, 10, 7, 10)
    configs = unique_configs(c for a in archs for c in a.op_configs())
    table = LatencyTable.new(FAST.identity(), resolution=32, harness=FAST.harness(), space="mobile", num_classes=10)
    for cfg, t in zip(configs, measure_ops(configs, FAST), strict=True):
        table.add(cfg.key(), t)
    return table, archs


def test_prediction_is_the_sum_of_op_costs(small_table):
    table, archs = small_table
    table = LatencyTable(dict(table.meta), table.entries)
    predictor = LatencyPredictor(table)
    feats = [predictor.features(a) for a in archs]
    classes = sorted({k for f in feats for k in f if k.startswith("sum:")})
    assert len(classes) >= 3
    table.calibration = Calibration("per_class", {"sum": 0.8, "n_ops": 0.01, "mparams": 0.2, "const": 0.3,
                                                  **{k: 0.05 * i for i, k in enumerate(classes)}}, 0.0)
    for arch, f in zip(archs, feats, strict=True):
        assert predictor.predict(arch) == pytest.approx(table.calibration.predict(f))


def test_adapt_repairs_a_table_from_another_device(small_table, tmp_path):
    table, archs = small_table
    # "another device": inverted residuals 3x slower there, everything else half as fast
    skewed = {k: Timing(*(v * (3.0 if k.startswith("ir|") else 2.0) for v in (t.median_ms, t.p10_ms, t.p90_ms)), t.n)
              for k, t in table.entries.items()}
    meta = {**table.meta, "device_name": "Other CPU", "fingerprint": {**table.meta["fingerprint"], "cpu_flags": "x"}}
    source = LatencyTable(meta, skewed, Calibration("none", {"sum": 1.0}, 0.0))
    source.save(tmp_path / "source.json")
    adapted, report = adapt(source, archs, {}, harness=FAST.harness(), passes=1, progress=False)
    assert report["before"]["random"]["mape_pct"] > 50  # the source table predicts this machine badly
    assert report["leave_one_out"]["random"]["mape_pct"] < 0.5 * report["before"]["random"]["mape_pct"]
    assert adapted.meta["adapted_from"]["device_name"] == "Other CPU"
    assert adapted.meta["device_name"] == table.meta["device_name"] and adapted.entries == source.entries
    assert adapted.meta["probe"]["ms"] and source.calibration.method == "none"  # the source is left as it was
    assert not adapted.check_environment_diffs()
    # ops measured here on the adapted table go in the source's units (entries 2-3x this machine's)
    assert 1.5 < source_units(adapted) < 4.0
    head = archs[0].op_configs()[-1].key()
    probe = {k: v for k, v in adapted.meta["probe"]["ms"].items() if k != head}
    missing = LatencyTable({**adapted.meta, "probe": {"ms": probe}},
                           {k: v for k, v in adapted.entries.items() if k != head}, adapted.calibration)
    predictor = LatencyPredictor(missing, measure_missing=True)
    predictor.predict(archs[0])
    assert predictor.added == 1 and head in missing
    no_probe = LatencyTable({k: v for k, v in adapted.meta.items() if k != "probe"}, adapted.entries)
    with pytest.raises(ValueError, match="without a probe"):
        LatencyPredictor(no_probe, measure_missing=True)
    # the calibration keeps the networks, so a check can time the fastest again
    assert len(recorded_networks(adapted)) == 3
    assert source.check_environment_diffs()  # flags differ
    result = check(adapted, networks=0)
    assert result["probe_ops"] == len(probe_configs(adapted)) and result["recorded_networks"] == 3
    assert result["recorded_drift_pct"] is not None and isinstance(result["fits"], bool)


def test_cli_adapt_and_check(small_table, tmp_path, capsys):
    from nas.cli import main

    table, archs = small_table
    src = tmp_path / "mobile.json"
    LatencyTable(dict(table.meta), table.entries, Calibration("none", {"sum": 1.0}, 0.0)).save(src)
    out = tmp_path / "adapted.json"
    # -n 0: only the zoo's fixed points, and this small table lacks their ops: nothing to measure
    assert main(["latency", "adapt", "--table", str(src), "-n", "0", "--out", str(out), *FAST_FLAGS]) == 2
    assert "at least one network" in capsys.readouterr().err
    assert main(["latency", "adapt", "--table", str(src), "-n", "-1", "--out", str(out)]) == 2
    assert "-n must be >= 0" in capsys.readouterr().err
    assert main(["latency", "adapt", "--table", str(src), "-n", "1", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["latency", "check", "--table", str(src), "-n", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["probe_ops"] > 0 and result["probe_drift_pct"] is not None and result["recorded_networks"] == 0
    assert main(["latency", "check", "--table", str(src), "-n", "0"]) == 0
    assert "this machine" in capsys.readouterr().out


def test_cli_adapt_samples_networks_the_table_covers(tmp_path, capsys):
    """End to end on a table built for the whole (small) fbnet@32 space."""
    from nas.cli import main

    src = tmp_path / "fb.json"
    assert main(["latency", "build", "--space", "fbnet", "--resolution", "32", "--out", str(src), *FAST_FLAGS]) == 0
    capsys.readouterr()
    out = tmp_path / "fb.adapted.json"
    assert main(["latency", "adapt", "--table", str(src), "-n", "8", "--no-zoo", "--passes", "1", "--out", str(out),
                 "--json", *FAST_FLAGS]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["networks"] == 8 and report["leave_one_out"]["random"]["n"] == 8
    adapted = LatencyTable.load(out)
    assert adapted.meta["adapted"]["networks"] == 8 and len(adapted.calibration.records) == 8
    assert all("arch" in r for r in adapted.calibration.records)
    assert main(["latency", "check", "--table", str(out), "-n", "2", "--passes", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["networks"]["n"] == 2 and result["recorded_networks"] == 3 and "fits" in result


def test_table_records_this_machine():
    table = LatencyTable.new(FAST.identity(), resolution=32)
    assert table.meta["fingerprint"]["device_name"] == table.meta["device_name"]
    assert table.check_environment_diffs() == []
    table.meta["fingerprint"] = {**table.meta["fingerprint"], "logical_cpus": 999}
    assert any("logical_cpus" in d for d in table.check_environment_diffs())
