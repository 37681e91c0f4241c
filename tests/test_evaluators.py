"""Evaluators: metric declarations, composition, the on-disk cache (counting calls), failure
capture, complexity, latency, training on a tiny synthetic set, and the zero-cost proxies."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import evaluators.train as train_mod
from evaluators import (
    BaseEvaluator,
    Cached,
    ComplexityEvaluator,
    Composite,
    JsonCache,
    MeasuredLatency,
    Metric,
    Result,
    TableLatency,
    TrainConfig,
    TrainedAccuracy,
    ZeroCostProxies,
    synthetic,
)
from evaluators.proxies import PROXIES, naswot
from evaluators.training.augment import pad_crop_flip
from evaluators.training.plan import plan_for
from latency_tables.measure import Settings
from latency_tables.table import LatencyTable, Timing
from nas.arch import Arch, Block
from nas.builder import build_model
from nas.complexity import complexity
from nas.rank_stats import kendall_tau, spearman_rho

FAST_TIMING = Settings(warmup=1, min_repeats=8, max_repeats=16, max_seconds=0.2)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: fast and reproducible on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(width: int = 16, classes: int = 4, resolution: int = 16) -> Arch:
    return Arch(resolution=resolution, num_classes=classes, stem=Block.make("cn", out_chs=width),
                blocks=(Block.make("ir", out_chs=width, exp_ratio=2),
                        Block.make("ir", out_chs=2 * width, exp_ratio=2, stride=2)),
                head=Block.make("hc", out_chs=64))


def crippled() -> Arch:
    """A network squeezed through a 1-channel bottleneck: it can hardly carry any signal."""
    return Arch(resolution=16, num_classes=4, stem=Block.make("cn", out_chs=2),
                blocks=(Block.make("cn", out_chs=1, kernel=1), Block.make("skip", out_chs=1, stride=2)),
                head=Block.make("hc", out_chs=4))


class Counting(BaseEvaluator):
    """Test double: ``width`` = stem channels times ``scale``; counts its calls."""

    name = "counting"
    metrics = (Metric("width", "max"), Metric("depth", "min"))

    def __init__(self, scale: float = 1.0, fail: str | None = None):
        self.scale, self.fail, self.calls = scale, fail, 0

    def config(self) -> dict[str, Any]:
        return {"scale": self.scale, "fail": self.fail}

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        self.calls += 1
        if self.fail == "raise":
            raise RuntimeError("boom\nsecond line")
        if self.fail == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        width = math.nan if self.fail == "nan" else arch.stem["out_chs"] * self.scale
        return {"width": width, "depth": len(arch.blocks)}, {"note": "x"}


# ------------------------------------------------------------------------------------------------
def test_metric_and_result_contracts() -> None:
    with pytest.raises(ValueError, match="direction"):
        Metric("acc", "up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identifier"):
        Metric("a b", "max")
    assert Metric("acc", "max").better(2, 1) and Metric("ms", "min").better(1, 2)
    r = Result("abc", {"x": 1.5}, info={"k": [1, 2]})
    assert Result.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    f = Result.failed("abc", "diverged", metrics={"x": 1.0})
    assert not f.ok and f.reason == "diverged" and f["x"] == 1.0
    with pytest.raises(KeyError, match="failed: diverged"):
        f["top1"]
    with pytest.raises(ValueError, match="needs a reason"):
        Result("abc", ok=False)
    with pytest.raises(ValueError, match="not a stored evaluator result"):
        Result.from_dict({"metrics": {}})


def test_cache_makes_rescoring_free_and_survives_restarts(tmp_path: Path) -> None:
    arch = tiny()
    inner = Counting()
    cached = Cached(inner, JsonCache(tmp_path))
    first = cached(arch)
    assert first.ok and first.metrics == {"width": 16.0, "depth": 2.0} and inner.calls == 1
    assert cached(arch) == first and inner.calls == 1
    restarted_inner = Counting()
    assert Cached(restarted_inner, JsonCache(tmp_path))(arch) == first and restarted_inner.calls == 0
    other_config = Counting(scale=2.0)
    assert Cached(other_config, JsonCache(tmp_path))(arch)["width"] == 32.0 and other_config.calls == 1
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert len(files) == 4 and all(f.startswith("counting/") for f in files)
    assert f"{arch.hash()}.json" in {Path(f).name for f in files}
    assert len(JsonCache(tmp_path)) == 2
    # a corrupt entry is a miss, recomputed and rewritten
    entry = next(p for p in tmp_path.rglob(f"{arch.hash()}.json"))
    entry.write_text("{ truncated")
    again = Counting()
    assert Cached(again, JsonCache(tmp_path))(arch).ok and again.calls == 1
    assert json.loads(entry.read_text())["ok"] is True


def test_composite_merges_caches_parts_and_declares_directions(tmp_path: Path) -> None:
    count, comp = Counting(), ComplexityEvaluator(ptflops=False)
    both = Composite([count, comp], cache=JsonCache(tmp_path))
    assert [(m.name, m.direction) for m in both.metrics] == [
        ("width", "max"), ("depth", "min"), ("params", "min"), ("macs_conv_linear", "min")]
    r = both(tiny())
    assert r.ok and set(r.metrics) == {"width", "depth", "params", "macs_conv_linear"}
    assert r["params"] == complexity(tiny(), ptflops=False).params
    # changing one part's config re-runs that part only
    count2 = Counting(scale=3.0)
    r2 = Composite([count2, comp], cache=JsonCache(tmp_path))(tiny())
    assert count2.calls == 1 and r2["width"] == 48.0 and r2["params"] == r["params"]
    with pytest.raises(ValueError, match="more than one part: depth, width"):
        Composite([Counting(), Counting()])
    with pytest.raises(ValueError, match="at least one"):
        Composite([])


@pytest.mark.parametrize(("fail", "reason"), [
    ("raise", "counting: RuntimeError: boom"), ("nan", "non-finite width=nan"), ("oom", "out of memory")])
def test_failures_are_results_not_crashes(tmp_path: Path, fail: str, reason: str) -> None:
    inner = Counting(fail=fail)
    search = Composite([ComplexityEvaluator(ptflops=False), inner], cache=JsonCache(tmp_path))
    r = search(tiny())
    assert not r.ok and reason in (r.reason or "")
    assert "params" in r.metrics  # the part before the failure keeps its numbers
    search(tiny())
    # deterministic failures are cached (not retried); out-of-memory depends on the machine
    assert inner.calls == (2 if fail == "oom" else 1)
    assert r.retryable == (fail == "oom")


def test_bad_requests_raise_value_error() -> None:
    data = synthetic()
    acc = TrainedAccuracy(data, TrainConfig(steps=1))
    with pytest.raises(ValueError, match=r"takes 32x32x3 inputs.*16x16x3"):
        acc(tiny(resolution=32))
    with pytest.raises(ValueError, match=r"predicts 10 classes.*replace\(num_classes=4\)"):
        acc(tiny(classes=10))
    with pytest.raises(ValueError, match="expected an Arch"):
        ComplexityEvaluator()("not an arch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one of epochs and steps"):
        TrainConfig(epochs=1, steps=10)
    with pytest.raises(ValueError, match="lr must be"):
        TrainConfig(steps=1, lr=0.0)
    with pytest.raises(ValueError, match="need data"):
        ZeroCostProxies(None, proxies=("synflow", "snip"))
    with pytest.raises(ValueError, match="distinct names"):
        ZeroCostProxies(data, proxies=("zen",))


def test_complexity_evaluator_both_conventions() -> None:
    r = ComplexityEvaluator()(tiny())
    c = complexity(tiny())
    assert r.metrics == {"params": c.params, "macs_conv_linear": c.macs_conv_linear, "macs_ptflops": c.macs_ptflops}
    assert [m.name for m in ComplexityEvaluator(ptflops=False).metrics] == ["params", "macs_conv_linear"]


def test_measured_latency() -> None:
    ev = MeasuredLatency(settings=FAST_TIMING)
    r = ev(tiny())
    assert r.ok and 0 < r["latency_ms"] < 1000 and r.info["samples"] >= 8
    assert ev.config()["settings"]["threads"] == 1 and ev.config()["device"]


def test_table_latency_sums_the_table_and_fails_on_missing_keys() -> None:
    arch = tiny()
    table = LatencyTable.new(FAST_TIMING.identity(), resolution=16)
    configs = arch.op_configs()
    for i, cfg in enumerate(configs):
        table.add(cfg.key(), Timing(0.5 + i, 0.4 + i, 0.6 + i, 10))
    ev = TableLatency(table)
    r = ev(arch)
    assert r.ok and r["latency_pred_ms"] == pytest.approx(sum(0.5 + i for i in range(len(configs))))
    wider = tiny(width=24)
    missing = ev(wider)
    assert not missing.ok and "cn|3x16x16" in (missing.reason or "")
    with pytest.raises(ValueError, match="measured for 16px"):
        ev(tiny(resolution=32))
    table.add("x", Timing(1, 1, 1, 1))
    assert TableLatency(table).config()["entries"] != ev.config()["entries"]


# ------------------------------------------------------------------------------------------------
def test_training_beats_chance_and_is_deterministic() -> None:
    data = synthetic()  # 4 classes: chance is 25%
    config = TrainConfig(steps=60, batch_size=32)
    plan = plan_for("cpu", threads=1)
    a = train_mod.train_and_evaluate(tiny(), data, config, plan=plan, progress=False)
    b = train_mod.train_and_evaluate(tiny(), data, config, plan=plan, progress=False)
    assert a.top1 >= 75.0 and a.loss_curve[-1] < a.loss_curve[0]
    assert a.top1 == b.top1 and a.loss_curve == b.loss_curve
    assert train_mod.train_and_evaluate(tiny(), data, TrainConfig(epochs=1, batch_size=64), progress=False).steps == 4


def test_trained_accuracy_caches_and_captures_divergence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = synthetic(train_per_class=16, test_per_class=4)
    calls = []
    real = train_mod.train_and_evaluate

    def counting(*args: Any, **kwargs: Any) -> train_mod.TrainOutcome:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_and_evaluate", counting)
    cache = JsonCache(tmp_path)
    score = Composite([ComplexityEvaluator(ptflops=False),
                       TrainedAccuracy(data, TrainConfig(steps=4, batch_size=16), progress=False)], cache=cache)
    first = score(tiny())
    assert first.ok and 0 <= first["top1"] <= 100 and len(calls) == 1
    assert score(tiny()) == first and len(calls) == 1  # no retraining
    assert first.info["train"]["steps"] == 4 and len(first.info["train"]["loss_curve"]) == 1
    # forced to NaN: an absurd learning rate blows the weights up
    boom = TrainedAccuracy(data, TrainConfig(steps=20, batch_size=16, lr=1e8), progress=False)
    r = Cached(boom, cache)(tiny())
    assert not r.ok and "Diverged: training loss is nan" in (r.reason or "")
    assert Cached(boom, cache)(tiny()) == r and len(calls) == 2


def test_augment_crops_and_flips() -> None:
    x = torch.arange(2 * 4 * 4 * 1, dtype=torch.uint8).view(2, 4, 4, 1)
    gen = torch.Generator().manual_seed(0)
    flipped = pad_crop_flip(x, gen, padding=0, flip=True)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(1))
    cropped = pad_crop_flip(x, gen, padding=2, flip=False)
    assert cropped.shape == x.shape and cropped.dtype == torch.uint8
    assert set(cropped.unique().tolist()) <= set(x.unique().tolist()) | {0}


# ------------------------------------------------------------------------------------------------
def test_proxies_finite_and_rank_a_crippled_network_lower() -> None:
    ev = ZeroCostProxies(synthetic(), batch_size=32)
    sane, bad = ev(tiny()), ev(crippled())
    assert sane.ok and bad.ok, (sane.reason, bad.reason)
    assert set(sane.metrics) == set(PROXIES)
    for name in PROXIES:
        assert math.isfinite(sane[name]) and math.isfinite(bad[name])
        assert sane[name] > bad[name], name
    assert ev(tiny()).metrics == sane.metrics  # deterministic
    only = ZeroCostProxies(None, proxies=("synflow",))(tiny())
    assert only.metrics == {"synflow": sane["synflow"]}


def test_naswot_matches_the_direct_kernel() -> None:
    """The layer-by-layer kernel equals Mellor et al.'s N_A - Hamming distance over all codes."""
    torch.manual_seed(0)
    model = build_model(tiny())
    images = torch.randn(8, 3, 16, 16)
    codes = []
    handles = [m.register_forward_pre_hook(lambda mod, inp: codes.append((inp[0].flatten(1) > 0).double()))
               for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]
    with torch.no_grad():
        model.train()(images)
    for h in handles:
        h.remove()
    c = torch.cat(codes, 1)
    hamming = (c[:, None, :] != c[None, :, :]).sum(-1).double()
    direct = torch.linalg.slogdet(c.shape[1] - hamming)[1]
    assert naswot(model, images) == pytest.approx(float(direct), rel=1e-9)


@pytest.mark.parametrize("rank", [kendall_tau, spearman_rho])
def test_rank_correlations_share_one_policy(rank) -> None:
    assert rank([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(rank([1, 1, 1], [1, 2, 3]))  # a constant score orders nothing
    with pytest.raises(ValueError, match="same length"):
        rank([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        rank([1, 2, math.nan], [1, 2, 3])


def test_kendall_tau_is_tau_b_with_ties() -> None:
    # one tie in x: 5 untied pairs in x, 6 in y; concordant 5, discordant 0 -> 5 / sqrt(5 * 6)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
