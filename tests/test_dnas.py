"""Differentiable search (FBNet DNAS, single-path sampling): the layer-wise views, the supernet and
its latency model, the training loop, derivation, checkpoint/resume and ``nas search``.

Everything runs on the ``fbnet`` space at 32x32 with a few steps on tiny synthetic data, one CPU
thread; the latency table is synthetic (a MAC-proportional cost per op), so the tests do not depend
on this machine's timings.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators import ZeroCostProxies, synthetic
from latency_tables.measure import Settings
from latency_tables.predict import LatencyPredictor
from latency_tables.table import Calibration, LatencyTable, Timing
from nas.builder import build_model
from nas.cli import main
from nas.complexity import count_macs_conv_linear
from nas.search.config import SearchConfig
from nas.search.dnas import (
    DNASSettings,
    DNASTrainer,
    LatencyModel,
    Supernet,
    derive,
    dnas_loss,
    layerwise_view,
)
from nas.search.dnas.search import DNASSearch
from nas.search.dnas.train import GRAD_CLIP_NORM, WEIGHT_DECAY
from search_spaces.spaces import get_space

RES, CLASSES = 32, 10


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mac_table(path: Path) -> LatencyTable:
    """Every op of fbnet@32px costs ``0.1 + MACs / 1e6`` ms."""
    table = LatencyTable.new(Settings().identity(), resolution=RES, space="fbnet", num_classes=CLASSES)
    for cfg in get_space("fbnet", resolution=RES, num_classes=CLASSES).op_configs(RES):
        ms = 0.1 + count_macs_conv_linear(cfg.build(), (cfg.in_chs, cfg.in_size, cfg.in_size)) / 1e6
        table.add(cfg.key(), Timing(ms, ms, ms, 1))
    table.save(path)
    return table


@pytest.fixture(scope="module")
def table_file(tmp_path_factory) -> Path:
    return mac_table(tmp_path_factory.mktemp("table") / "fbnet32_macs.json").path


@pytest.fixture(scope="module")
def table(table_file) -> LatencyTable:
    return LatencyTable.load(table_file, check_env=False)


@pytest.fixture(scope="module")
def view():
    return layerwise_view(get_space("fbnet", resolution=RES, num_classes=CLASSES))


@pytest.fixture(scope="module")
def latency(view, table) -> LatencyModel:
    return LatencyModel.from_table(view, table)


@pytest.fixture(scope="module")
def data():
    return synthetic(num_classes=CLASSES, train_per_class=4, test_per_class=2, resolution=RES, seed=0)


@pytest.fixture(scope="module")
def initial(view):
    """One supernet (seed 0) and its initial state, restored before each use."""
    torch.manual_seed(0)
    net = Supernet(view)
    return net, copy.deepcopy(net.state_dict())


def fresh(initial) -> Supernet:
    net, state = initial
    net.load_state_dict(state)
    return net


def settings(**changes) -> DNASSettings:
    base = dict(mode="single", epochs=1, warmup_epochs=0, loss="add", alpha=1.0, beta=1.0, batch_size=8,
                weight_lr=0.01, arch_lr=0.1, samples=6)
    base.update(changes)
    return DNASSettings(**base)


# ------------------------------------------------------------------------------------------ views
def test_fbnet_view_is_the_whole_space(view) -> None:
    space = view.space
    assert len(view.layers) == 22 and all(len(layer) == 9 for layer in view.layers)
    rng = np.random.default_rng(0)
    for _ in range(3):
        indices = tuple(int(k) for k in rng.integers(0, 9, 22))
        arch = view.arch(indices)
        assert space.encode(arch) == indices  # the view's indices are the space's own point
        body = [layer.configs[k] for layer, k in zip(view.layers, indices, strict=True)]
        assert arch.op_configs() == [view.stem, *body, view.head]


def test_mobile_view_covers_the_fixed_skeleton_subspace() -> None:
    space = get_space("mobile", resolution=RES, num_classes=CLASSES)
    v = layerwise_view(space)
    assert len(v.layers) == 22  # depths 1 + 4 * 5 + 1
    assert all(layer.options == space.choice(layer.choice).core for layer in v.layers)
    rng = np.random.default_rng(1)
    arch = v.arch([int(rng.integers(len(layer))) for layer in v.layers])
    assert space.contains(arch) and arch.resolution == RES
    assert arch.op_configs()[0] == v.stem and arch.op_configs()[-1] == v.head
    with pytest.raises(ValueError, match="one input size"):
        layerwise_view(get_space("mobile", num_classes=CLASSES))
    with pytest.raises(ValueError, match="layer-wise space"):
        layerwise_view(get_space("mnasnet"))


# ---------------------------------------------------------------------------------- latency model
def test_latency_model_equals_the_predictor_calibrated_or_not(view, table) -> None:
    rng = np.random.default_rng(2)
    picks = [tuple(int(k) for k in rng.integers(0, 9, 22)) for _ in range(3)]
    calibrated = copy.deepcopy(table)
    calibrated.calibration = Calibration("full", {"sum": 1.1, "n_ops": 0.01, "mparams": 0.2, "const": 0.3}, 0.0)
    per_class = copy.deepcopy(table)  # a scale per op class (an adapted table): still exact per op
    per_class.calibration = Calibration("per_class", {"sum": 0.9, "n_ops": 0.01, "const": 0.3, "sum:ir@8": 0.4,
                                                      "sum:ir@16": -0.2, "sum:cn@32": 0.1}, 0.0)
    for t in (table, calibrated, per_class):
        model = LatencyModel.from_table(view, t)
        predictor = LatencyPredictor(t)
        for indices in picks:
            want = predictor.predict(view.arch(indices))
            assert model.of(indices) == pytest.approx(want, rel=1e-9)
            one_hot = [torch.nn.functional.one_hot(torch.tensor(k), 9).float() for k in indices]
            assert float(model(one_hot)) == pytest.approx(want, rel=1e-5)


def test_loss_forms_and_the_mult_latency_floor(view, data, initial) -> None:
    ce, lat = torch.tensor(2.0), torch.tensor(20.0)
    assert float(dnas_loss(ce, lat, kind="mult", alpha=0.2, beta=0.6)) == pytest.approx(2 * 0.2 * np.log(20) ** 0.6)
    assert float(dnas_loss(ce, lat, kind="add", alpha=0.1, beta=2.0)) == pytest.approx(2 + 0.1 * 400)
    assert float(dnas_loss(ce, lat, kind="relative", alpha=0.2, beta=1.0, reference_ms=10.0)) == pytest.approx(2.4)
    # the relative loss is scale-free: the same networks timed 100x faster give the same loss
    assert float(dnas_loss(ce, lat / 100, kind="relative", alpha=0.2, beta=0.5, reference_ms=0.1)) == pytest.approx(
        float(dnas_loss(ce, lat, kind="relative", alpha=0.2, beta=0.5, reference_ms=10.0)))
    tiny = LatencyModel([[0.01] * len(layer) for layer in view.layers], 0.1)  # every network < 1 ms
    with pytest.raises(ValueError, match="dnas_loss: 'mult' needs every table latency > 1 ms.*use dnas_loss 'relative'"):
        DNASTrainer(fresh(initial), tiny, data, settings(loss="mult", alpha=0.2))


def test_the_default_loss_trains_where_every_network_is_under_a_millisecond(view, data, initial) -> None:
    """fbnet@32: every network is faster than 1 ms, which FBNet's log-latency loss refuses."""
    tiny = LatencyModel([[0.004 * (1 + k) for k in range(len(layer))] for layer in view.layers], 0.05)
    assert tiny.bounds()[1] < 1.0
    defaults = DNASSettings()
    assert defaults.loss == "relative"
    net = fresh(initial)
    trainer = DNASTrainer(net, tiny, data, DNASSettings(epochs=2, batch_size=8, arch_lr=0.1))
    assert trainer.reference_ms == pytest.approx(float(tiny([torch.full((9,), 1 / 9)] * len(view.layers))))
    history = trainer.fit().history
    assert len(history) == 2 and history[1]["searched"]
    assert all(np.isfinite(h["weight_ce"]) for h in history) and np.isfinite(history[1]["arch_loss"])
    assert history[1]["expected_latency_ms"] < tiny.mean()  # the latency term pulled the distribution down


# ------------------------------------------------------------------------- stable weight training
def test_residual_candidates_start_as_the_identity(initial) -> None:
    net = fresh(initial).train()
    residual = [(i, cand) for i, layer in enumerate(net.layers) for cand in layer.candidates
                if getattr(cand, "has_skip", False)]
    assert len(residual) > 50  # fbnet: every stride-1 candidate with equal widths but skip
    for i, cand in residual[::7]:
        layer = net.view.layers[i]
        x = torch.randn(4, layer.in_chs, layer.in_size, layer.in_size)
        assert torch.equal(cand(x), x)


def test_a_weight_step_is_bounded_by_gradient_clipping(initial, latency, data, monkeypatch) -> None:
    """A wildly wrong classifier gives a huge gradient; the step stays within the clipped norm."""
    norms = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: norms.append(clip(*a, **k)) or norms[-1])
    net = fresh(initial)
    trainer = DNASTrainer(net, latency, data, settings(mode="single", weight_lr=0.1))
    with torch.no_grad():
        net.head.classifier.weight.mul_(1e4)
    before = [p.detach().clone() for p in net.weight_parameters()]
    x, y = torch.randn(8, 3, RES, RES), torch.arange(8)
    trainer.weight_step(x, y, 5.0, 0.1)
    assert len(norms) == 1 and norms[0] > 10 * GRAD_CLIP_NORM  # the raw gradient was far beyond the clip
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(net.weight_parameters(), before, strict=True)))
    decay = 0.1 * WEIGHT_DECAY * torch.sqrt(sum((b ** 2).sum() for b in before))
    assert step <= 0.1 * (1 + 0.9) * GRAD_CLIP_NORM * 1.001 + decay  # Nesterov's first step: lr * (1 + mu) * g
    with pytest.raises(ValueError, match="dnas_warmup_epochs"):
        settings(epochs=2, warmup_epochs=2)


# ------------------------------------------------------------------------------------ single path
def test_single_path_runs_exactly_one_candidate_per_layer(initial, latency, data) -> None:
    net = fresh(initial)
    calls: Counter[tuple[int, int]] = Counter()
    handles = [cand.register_forward_hook(lambda *_, key=(i, k): calls.update([key]))
               for i, layer in enumerate(net.layers) for k, cand in enumerate(layer.candidates)]
    try:
        trainer = DNASTrainer(net, latency, data, settings(mode="single"))
        x = torch.randn(4, 3, RES, RES)
        y = torch.arange(4)
        for step in (lambda: trainer.weight_step(x, y, 5.0, 0.01), lambda: trainer.arch_step(x, y, 5.0)):
            calls.clear()
            step()
            per_layer = Counter(i for i, _ in calls.elements())
            assert per_layer == Counter({i: 1 for i in range(len(net.layers))})
        calls.clear()
        net(x, net.sample(5.0, "soft"))  # FBNet's soft mode runs them all
        assert calls == Counter({(i, k): 1 for i, layer in enumerate(net.layers) for k in range(len(layer))})
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------- latency trade-off
@pytest.mark.parametrize("mode,loss,key,values,extra", [
    ("single", "add", "alpha", (0.0, 0.001, 0.01), {"epochs": 2}),
    ("soft", "relative", "alpha", (0.0, 0.3, 3.0), {"arch_lr": 0.3}),
    ("soft", "mult", "beta", (0.0, 0.1, 4.0), {"alpha": 0.2, "arch_lr": 0.3}),
])
def test_raising_the_latency_weight_lowers_the_derived_latency(initial, view, latency, data, mode, loss, key,
                                                               values, extra) -> None:
    """The latency weight is alpha in the additive loss and the exponent beta in FBNet's
    multiplicative one (alpha scales the whole loss there)."""
    derived = []
    for value in values:
        net = fresh(initial)
        DNASTrainer(net, latency, data, settings(mode=mode, loss=loss, **{key: value, **extra})).fit()
        derived.append(derive(view, net.probabilities(), latency, samples=0, seed=0)[0].latency_ms)
    assert derived[0] > derived[1] > derived[2], derived


# -------------------------------------------------------------------------------------- derive
def test_derived_architectures_are_points_of_the_space_and_build(initial, view, latency, data) -> None:
    net = fresh(initial)
    DNASTrainer(net, latency, data, settings()).fit()
    derived = derive(view, net.probabilities(), latency, samples=6, seed=0)
    assert [d.kind for d in derived] == ["argmax"] + ["sample"] * 6
    assert len({d.arch.hash() for d in derived}) == 7
    probs = net.probabilities()
    assert derived[0].indices == tuple(int(p.argmax()) for p in probs)
    for d in derived:
        assert view.space.encode(d.arch) == d.point
        assert d.latency_ms == pytest.approx(LatencyPredictor(latency_table_of(latency, view)).predict(d.arch))
    for d in derived[:2]:
        out = build_model(d.arch).eval()(torch.randn(2, 3, RES, RES))
        assert out.shape == (2, CLASSES) and torch.isfinite(out).all()


def latency_table_of(latency: LatencyModel, view) -> LatencyTable:
    """A table holding exactly the latency model's costs (to check derivation against the predictor)."""
    t = LatencyTable.new(Settings().identity(), resolution=RES, space="fbnet")
    stem_and_head = latency.constant / 2
    for cfg in (view.stem, view.head):
        t.add(cfg.key(), Timing(stem_and_head, stem_and_head, stem_and_head, 1))
    for layer, costs in zip(view.layers, latency.costs(), strict=True):
        for cfg, c in zip(layer.configs, costs.tolist(), strict=True):
            t.add(cfg.key(), Timing(c, c, c, 1))
    return t


# ---------------------------------------------------------------------------- checkpoint/resume
def test_resume_continues_exactly_and_refuses_another_search(tmp_path, monkeypatch, initial, latency, data) -> None:
    ckpt = tmp_path / "dnas.ckpt"
    straight = fresh(initial)
    whole = DNASTrainer(straight, latency, data, settings(epochs=2), identity={"seed": 0}).fit()
    theta = [t.detach().clone() for t in straight.theta]

    save = DNASTrainer._save

    def save_then_die(self, *args) -> None:
        save(self, *args)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    with monkeypatch.context() as m:
        m.setattr(DNASTrainer, "_save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            DNASTrainer(fresh(initial), latency, data, settings(epochs=2), checkpoint=ckpt, identity={"seed": 0}).fit()
    resumed = fresh(initial)  # a new process would rebuild the supernet from scratch
    again = DNASTrainer(resumed, latency, data, settings(epochs=2), checkpoint=ckpt, identity={"seed": 0}).fit()
    assert again.complete and len(again.history) == 2
    assert [h["weight_ce"] for h in again.history] == [h["weight_ce"] for h in whole.history]
    for a, b in zip(theta, resumed.theta, strict=True):
        assert torch.equal(a, b)
    blob = torch.load(ckpt, weights_only=True)
    assert json.loads(blob["state"])["epochs_done"] == 2
    with pytest.raises(ValueError, match="different search"):
        DNASTrainer(fresh(initial), latency, data, settings(epochs=2), checkpoint=ckpt, identity={"seed": 1}).fit()


@pytest.mark.parametrize("state,why", [("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
                                       ("[1]", "an array where a JSON object belongs")])
def test_a_malformed_checkpoint_state_is_refused_naming_the_file(tmp_path, initial, latency, data, state, why) -> None:
    ckpt = tmp_path / "dnas.ckpt"
    torch.save({"state": state}, ckpt)
    with pytest.raises(ValueError, match=rf"dnas.ckpt \(its state\): not a litenas DNAS checkpoint: {why}"):
        DNASTrainer(fresh(initial), latency, data, settings(epochs=1), checkpoint=ckpt, identity={"seed": 0}).fit()


# ------------------------------------------------------------------------------------- config/cli
def base_config(tmp_path: Path, table_file: Path, **changes) -> SearchConfig:
    cfg = dict(space="fbnet", strategy="proxyless", seed=0, out=str(tmp_path / "run"), latency_table=str(table_file),
               evaluator="proxy", proxy="synflow", data="synthetic", objective="reward", max_latency_ms=50.0,
               batch_size=8, top_k=3, dnas_epochs=1, dnas_warmup_epochs=0, dnas_samples=2, dnas_loss="add",
               dnas_alpha=0.5, dnas_beta=1.0)
    cfg.update(changes)
    return SearchConfig.of(**cfg)


@pytest.mark.parametrize("changes,needle", [
    ({"dnas_loss": "log"}, "dnas_loss: 'log' is not one of relative, mult, add"),
    ({"dnas_temperature_decay": 1.5}, "dnas_temperature_decay"),
    ({"dnas_warmup_epochs": 1}, "dnas_warmup_epochs"),
    ({"dnas_loss": "mult", "dnas_alpha": 0.0}, "dnas_alpha"),
    ({"device": "tpu"}, "device"),
    ({"executor": "ray"}, "executor must be 'inprocess'"),
])
def test_config_checks_the_dnas_keys(tmp_path, table_file, changes, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        base_config(tmp_path, table_file, **changes)


def test_dnas_keys_need_a_dnas_strategy_and_stay_out_of_other_identities(tmp_path, table_file) -> None:
    with pytest.raises(ValueError, match="dnas_samples: only meaningful with strategy fbnet or proxyless"):
        SearchConfig.of(space="fbnet", latency_table=str(table_file), max_latency_ms=50.0, dnas_samples=3)
    evo = SearchConfig.of(space="fbnet", latency_table=str(table_file), max_latency_ms=50.0)
    assert not any(k.startswith("dnas_") for k in evo.identity())
    assert "dnas_alpha" in base_config(tmp_path, table_file).identity()


def test_fbnet_strategy_end_to_end_writes_the_search_outputs(tmp_path, table_file, data) -> None:
    cfg = base_config(tmp_path, table_file, strategy="fbnet", dnas_samples=3, top_k=2)
    score = ZeroCostProxies(data, proxies=["synflow"], batch_size=8, seed=0, threads=1)
    search = DNASSearch.from_config(cfg, score=score, data=data)
    state = search.run(progress=False)
    assert [r.number for r in state.records] == [0, 1, 2, 3] and state.evaluated == 4
    assert all(search.view.space.contains(r.arch) for r in state.records)
    report = search.write_report(compare_zoo=False)
    run = cfg.run_dir
    for name in ("config.json", "candidates.json", "pareto.json", "fixed_points.json", "report.md", "pareto.png",
                 "dnas.json", "dnas.ckpt"):
        assert (run / name).is_file(), name
    # the derived networks are the result: all of them in top/ (top_k 2 notwithstanding), the argmax marked
    assert len(list((run / "top").glob("rank*.json"))) == 4
    text = report.read_text()
    argmax = search.derived[0].arch.hash()
    assert any(argmax in line and "derived: argmax of P_theta" in line for line in text.splitlines())
    assert "## Differentiable search (fbnet, `dnas.json`)" in text and "weight cross-entropy" in text
    summary = json.loads((run / "dnas.json").read_text())
    assert summary["mode"] == "soft" and summary["complete"] and len(summary["distribution"]) == 22
    assert [d["kind"] for d in summary["derived"]] == ["argmax", "sample", "sample", "sample"]
    assert "Top new candidates" in report.read_text()


def test_cli_proxyless_search_and_rerun_resumes(tmp_path, table_file, capsys) -> None:
    out = tmp_path / "cli"
    argv = ["search", "--space", "fbnet", "--strategy", "proxyless", "--latency-table", str(table_file),
            "--max-latency-ms", "50", "--evaluator", "proxy", "--proxy", "synflow", "--data", "synthetic",
            "--batch-size", "64", "--dnas-epochs", "1", "--dnas-warmup-epochs", "0", "--dnas-samples", "2",
            "--dnas-loss", "add", "--dnas-alpha", "0.5", "--dnas-beta", "1", "--out", str(out), "--json", "--quiet"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["evaluated"] == 3 and Path(summary["report"]).is_file() and summary["top"]
    fixed = json.loads((out / "fixed_points.json").read_text())
    assert fixed  # the zoo's 32px entries are placed on the same axes
    before = json.loads((out / "dnas.json").read_text())
    assert main(argv + ["--no-zoo"]) == 0  # a re-run resumes: the checkpoint already holds every epoch
    capsys.readouterr()
    after = json.loads((out / "dnas.json").read_text())
    assert after["history"] == before["history"] and after["derived"] == before["derived"]
