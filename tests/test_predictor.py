"""Accuracy predictor: fit by cross-validated Kendall tau, JSON round trip, refusal of a foreign
space, the evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluators.predictor import Featurizer, PredictedAccuracy, Predictor, fit_predictor
from evaluators.trained_nets import TrainedNet
from nas.complexity import complexity
from search_spaces.spaces import get_space

SPACE = get_space("mobile", resolution=32, num_classes=10)
DATA = {"fingerprint": "cifar-test", "classes": 10}


@pytest.fixture(scope="module")
def records() -> list[TrainedNet]:
    """30 networks whose 'accuracy' grows with log MACs plus noise: a predictor must find the order."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(30):
        arch = SPACE.sample(i)
        macs = complexity(arch, ptflops=False).macs_conv_linear
        out.append(TrainedNet.of(arch, DATA, {"epochs": 5}, float(np.clip(10 * np.log10(macs) - 20
                                                                            + rng.normal(0, 1.0), 0, 100))))
    return out


def test_fit_picks_the_best_cross_validated_model_and_round_trips(records, tmp_path: Path) -> None:
    pred = fit_predictor(records, SPACE, folds=5)
    assert set(pred.cv) >= {"gbm", "mlp", "ridge(alpha=1)"} and pred.model["name"] == max(pred.cv, key=pred.cv.get)
    assert max(pred.cv.values()) > 0.5  # the order is learnable from the features
    x = np.stack([Featurizer(SPACE)(r.to_arch()) for r in records[:5]])
    again = Predictor.load(pred.save(tmp_path / "p.json"))
    np.testing.assert_allclose(again.predict(x)[0], pred.predict(x)[0])
    for kind in ("ridge", "gbm", "mlp"):  # every kind predicts, from JSON alone
        one = fit_predictor(records, SPACE, models=[kind], folds=2)
        mean, spread = Predictor.load(one.save(tmp_path / f"{kind}.json")).predict(x)
        assert mean.shape == (5,) and np.isfinite(mean).all()
        assert (spread is None) == (kind == "gbm")


def test_foreign_space_data_or_too_few_records_are_refused(records, tmp_path: Path) -> None:
    pred = fit_predictor(records, SPACE, models=["ridge"], folds=3)
    with pytest.raises(ValueError, match="the predictor encodes space 'mobile'.*the search uses 'fbnet'"):
        pred.check(get_space("fbnet", resolution=32, num_classes=10))
    with pytest.raises(ValueError, match="fitted on data cifar-test, the search uses other"):
        pred.check(SPACE, "other")
    with pytest.raises(ValueError, match="need at least 10 trained networks"):
        fit_predictor(records[:6], SPACE, folds=5)
    mixed = records[:6] + [TrainedNet.of(r.to_arch(), {"fingerprint": "x"}, {}, 1.0) for r in records[6:12]]
    with pytest.raises(ValueError, match="from 2 datasets"):
        fit_predictor(mixed, SPACE, folds=3)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a litenas accuracy predictor"):
        Predictor.load(tmp_path / "bad.json")


def test_predicted_accuracy_evaluator(records) -> None:
    pred = fit_predictor(records, SPACE, models=["ridge"], folds=3)
    ev = PredictedAccuracy(pred, SPACE)
    r = ev(records[0].to_arch())
    assert r.ok and "top1_std" in r.info and ev.config()["predictor"]["digest"]
    assert "in-sample" in r.info["note"]  # fitted on it: a report marks its figure
    unseen = next(a for a in (SPACE.sample(seed) for seed in range(100)) if a.hash() not in pred.fitted_on)
    assert "note" not in ev(unseen).info
    from nas.search.report import score_fixed_points

    seen, other = score_fixed_points([("seen", records[0].to_arch()), ("other", unseen)], [ev])
    assert seen.notes == (f"predictor: {r.info['note']}",) and other.notes == ()
    fbnet_arch = get_space("fbnet", resolution=32, num_classes=10).sample(0)
    with pytest.raises(ValueError):
        ev(fbnet_arch)  # outside the predictor's space: a bad request, not a failed candidate


def test_cli_fit_then_search_ranks_by_the_predictor(records, tmp_path: Path, capsys) -> None:
    import json

    from evaluators.trained_nets import TrainedNets
    from nas.cli import main

    nets = TrainedNets(tmp_path / "nets.json")
    for r in records:
        nets.add(r)
    assert main(["predictor", "fit", str(tmp_path / "nets.json"), "--space", "mobile", "--models", "ridge",
                 "--folds", "3", "--out", str(tmp_path / "p.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 30
    assert main(["search", "--space", "mobile", "--resolution", "32", "--strategy", "random", "--latency-table",
                 "mobile_32_cpu", "--measure-missing", "--evaluator", "predictor", "--predictor",
                 str(tmp_path / "p.json"), "--data", "none", "--max-latency-ms", "9", "--budget", "3", "--no-zoo",
                 "--quiet", "--out", str(tmp_path / "run"), "--json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]
    assert best is not None and "top1" in best["metrics"]
    # a predictor of another resolution, or no predictor file, is refused before the search starts
    assert main(["search", "--space", "mobile", "--resolution", "64", "--strategy", "random", "--latency-table",
                 "mobile_32_cpu", "--evaluator", "predictor", "--predictor", str(tmp_path / "p.json"), "--data",
                 "none", "--max-latency-ms", "9", "--budget", "1", "--out", str(tmp_path / "r2")]) == 2
    assert "fitted at resolution 32, the search runs at 64" in capsys.readouterr().err
    assert main(["search", "--space", "fbnet", "--resolution", "32", "--strategy", "random", "--latency-table",
                 "mobile_32_cpu", "--evaluator", "predictor", "--data", "none", "--max-latency-ms", "9",
                 "--out", str(tmp_path / "r3")]) == 2  # (mobile's is shipped: the default of its searches)
    assert "predictor: give a predictor file for evaluator 'predictor': no shipped predictor covers space 'fbnet'" \
        in capsys.readouterr().err


def test_shipped_predictors_by_name(records, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import json

    from evaluators import predictor as pm
    from nas.cli import main

    monkeypatch.setattr(pm, "SHIPPED_DIR", tmp_path)
    fit_predictor(records, SPACE, models=["ridge"], folds=3).save(tmp_path / "mobile_32_test.json")
    (tmp_path / "mobile_32_test_nets.json").write_text("{}")  # its dataset is not a predictor
    assert pm.shipped_predictors() == ["mobile_32_test"]
    assert Predictor.load("mobile_32_test").n == 30
    assert main(["predictor", "list", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["space"], row["resolution"], row["networks"]) == ("mobile_32_test", "mobile", 32, 30)
    with pytest.raises(ValueError, match="neither a file nor a shipped predictor .shipped: mobile_32_test"):
        Predictor.load("nope")
