"""NNI interoperability (the ``litenas[nni]`` extra): the fbnet space as an NNI model space, the
lossless sample <-> Arch round trip, an NNI strategy run natively, and NNI strategies behind
``nas search``. Skipped where NNI is not installed; CI runs them in their own environment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nni", reason="NNI is an optional extra: pip install 'litenas[nni]' "
                                  "(.ci/run tests it in its own virtual environment)")

from test_search_runner import fake_table  # noqa: E402
from test_strategies import SPACE, drive, values_for  # noqa: E402

from evaluators.datasets import synthetic  # noqa: E402
from nas.builder import build_model  # noqa: E402
from nas.cli import main  # noqa: E402
from nas.export import export  # noqa: E402
from nas.export.pt import load  # noqa: E402
from nas.interop.nni_space import (  # noqa: E402
    LitenasModelSpace,
    arch_from_sample,
    sample_from_arch,
    state_dict_from_frozen,
    view_of,
)
from nas.search.nni_strategies import NNIStrategy  # noqa: E402
from search_spaces.spaces import get_space  # noqa: E402

RES = 32


@pytest.fixture(scope="module")
def space():
    return get_space("fbnet", resolution=RES, num_classes=10)


@pytest.fixture(scope="module")
def model_space(space):
    return LitenasModelSpace(space)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return fake_table(tmp_path_factory.mktemp("table") / "fbnet32.json")


def test_fbnet_becomes_one_nni_choice_per_layer(space, model_space) -> None:
    mutables = model_space.simplify()
    view = view_of(space)
    assert list(mutables) == [layer.choice for layer in view.layers] and len(mutables) == 22
    for layer in view.layers:
        assert list(mutables[layer.choice].values) == list(layer.labels)  # k3_e1, k3_e1_g2, ... skip


def test_sample_round_trip_and_frozen_model_is_the_litenas_network(space, model_space) -> None:
    """Every sampled NNI model is the network build_model builds: same tensors, same output."""
    view = view_of(space)
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = space.sample(rng)
        sample = sample_from_arch(view, arch)
        assert arch_from_sample(view, sample) == arch
        frozen = model_space.freeze(sample).eval()
        ours = build_model(arch).eval()
        ours.load_state_dict(state_dict_from_frozen(arch, frozen))
        x = torch.randn(2, 3, RES, RES)
        with torch.no_grad():
            assert torch.allclose(frozen(x), ours(x), atol=1e-5)
        assert sum(p.numel() for p in frozen.parameters()) == sum(p.numel() for p in ours.parameters())


def test_nni_samples_of_other_forms_and_bad_samples(space) -> None:
    view = view_of(space)
    arch = space.sample(1)
    sample = sample_from_arch(view, arch)
    by_index = {layer.choice: layer.labels.index(sample[layer.choice]) for layer in view.layers}
    assert arch_from_sample(view, by_index) == arch
    first = view.layers[0].choice
    with pytest.raises(ValueError, match="no candidate for layer"):
        arch_from_sample(view, {k: v for k, v in sample.items() if k != first})
    with pytest.raises(ValueError, match="unknown layer label"):
        arch_from_sample(view, {**sample, "s9.l9": "k3_e1"})
    with pytest.raises(ValueError, match=f"layer {first!r} has no candidate 'k9_e9'"):
        arch_from_sample(view, {**sample, first: "k9_e9"})
    with pytest.raises(ValueError, match="expected a mapping"):
        arch_from_sample(view, ["k3_e1"])
    with pytest.raises(ValueError, match="layer-wise"):
        LitenasModelSpace("mnasnet", resolution=RES)


def test_mobile_layer_templates_as_an_nni_space() -> None:
    space = get_space("mobile", resolution=RES, num_classes=10)
    model_space = LitenasModelSpace(space)
    view = view_of(space)
    sample = {k: m.values[-1] for k, m in model_space.simplify().items()}
    arch = arch_from_sample(view, sample)
    assert space.contains(arch) and sample_from_arch(view, arch) == sample


def test_nni_regularized_evolution_runs_natively_and_its_result_exports(space, model_space, tmp_path) -> None:
    """NNI's own loop (sequential engine, functional evaluator training each model briefly on
    synthetic data); the best sample comes back as an Arch, with the trained weights, and exports."""
    import nni
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace
    from nni.nas.strategy import RegularizedEvolution

    data = synthetic(num_classes=10, train_per_class=8, test_per_class=4, resolution=RES)

    def tensors(split):  # NHWC uint8 -> NCHW float in [0, 1]
        return torch.from_numpy(split.images).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(split.labels)

    (x_train, y_train), (x_test, y_test) = tensors(data.train), tensors(data.test)
    trained: dict[str, torch.nn.Module] = {}

    def train_and_score(model: torch.nn.Module) -> None:
        torch.manual_seed(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.train()
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train), y_train).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(x_test).argmax(1) == y_test).float().mean())
        trained[json.dumps(nni.get_current_parameter().sample, sort_keys=True)] = model
        nni.report_final_result(acc)

    strategy = RegularizedEvolution(population_size=2, sample_size=1, seed=0)
    strategy(RawFormatModelSpace(model_space, FunctionalEvaluator(train_and_score)),
             SequentialExecutionEngine(max_model_count=3))
    models = list(strategy.list_models())
    assert len(models) == 3 and all(0.0 <= m.metric <= 1.0 for m in models)
    best = models[0]
    view = view_of(space)
    arch = arch_from_sample(view, best.sample)
    assert space.contains(arch)
    weights = state_dict_from_frozen(arch, trained[json.dumps(best.sample, sort_keys=True)])
    result = export(arch, "pt", tmp_path / "best.pt", weights=weights)
    net = load(result.path).eval()
    with torch.no_grad():
        expect = trained[json.dumps(best.sample, sort_keys=True)](x_test[:2])
        assert torch.allclose(net(x_test[:2]), expect, atol=1e-5)


def _search(out: Path, table: Path, budget: int, strategy: str = "nni-evolution") -> dict:
    import io
    from contextlib import redirect_stdout

    argv = ["search", "--space", "fbnet", "--strategy", strategy, "--population", "3", "--sample-size", "2",
            "--latency-table", str(table), "--max-latency-ms", "50", "--evaluator", "proxy", "--proxy", "naswot",
            "--data", "synthetic", "--budget", str(budget), "--out", str(out), "--seed", "3", "--json", "--quiet",
            "--no-zoo"]
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(argv) == 0
    return json.loads(buf.getvalue())


def _evaluated(out: Path) -> list[str]:
    rows = json.loads((out / "candidates.json").read_text())
    rows = rows["candidates"] if isinstance(rows, dict) else rows
    return [r["hash"] for r in sorted(rows, key=lambda r: r["trial"]) if r["state"] != "infeasible"]


@pytest.mark.parametrize("strategy", ["nni-evolution", "nni-random"])
def test_nas_search_with_an_nni_strategy_resumes_where_it_stopped(tmp_path, table, strategy) -> None:
    """The runner drives NNI's strategy: distinct candidates, the usual run directory; stopped
    after 4 and started again with a budget of 7 it proposes what a fresh run of 7 does."""
    whole = _search(tmp_path / "whole", table, 7, strategy)
    assert whole["evaluated"] == 7 and Path(whole["report"]).is_file() and whole["top"]
    _search(tmp_path / "split", table, 4, strategy)
    _search(tmp_path / "split", table, 7, strategy)
    assert _evaluated(tmp_path / "split") == _evaluated(tmp_path / "whole")
    assert len(set(_evaluated(tmp_path / "whole"))) == 7


def test_nni_strategy_config_errors(tmp_path, table) -> None:
    from nas.search.config import SearchConfig
    from nas.search.nni_strategies import NNIStrategy

    with pytest.raises(ValueError, match="optimises one value"):
        SearchConfig.of(space="fbnet", strategy="nni-random", latency_table=str(table), objective="pareto",
                     out=str(tmp_path))
    with pytest.raises(ValueError, match="layer-wise"):
        NNIStrategy(get_space("mnasnet", resolution=RES), kind="nni-random")
    with pytest.raises(ValueError, match="unknown NNI strategy"):
        NNIStrategy(get_space("fbnet", resolution=RES), kind="nni-tpe")


NNI_FACTORIES = {
    "nni-evolution": lambda seed: NNIStrategy(SPACE, kind="nni-evolution", seed=seed, population=10, sample_size=3),
    "nni-random": lambda seed: NNIStrategy(SPACE, kind="nni-random", seed=seed),
}


def _drive(name: str, seed: int, steps: int, **kwargs) -> list[tuple[int, ...]]:
    strategy = NNI_FACTORIES[name](seed)
    try:
        return drive(strategy, steps, **kwargs)
    finally:
        strategy.close()


@pytest.mark.parametrize("name", NNI_FACTORIES)
def test_nni_strategies_meet_the_ask_tell_contract(name) -> None:
    """The contract of tests/test_strategies.py: valid points with several asks outstanding,
    failed results, same seed same sequence, replayed history."""
    points = _drive(name, 0, 30, batch=3)
    assert all(SPACE.is_valid(p) for p in points) and len(set(points)) == 30  # NNI de-duplicates
    assert len(_drive(name, 1, 30, fail_every=2)) == 30
    assert _drive(name, 7, 25, batch=2) == _drive(name, 7, 25, batch=2)
    assert _drive(name, 7, 25) != _drive(name, 8, 25)
    strategy = NNI_FACTORIES[name](3)
    for p in (SPACE.sample_point(i) for i in range(12)):
        strategy.tell(p, values_for(strategy, p))
    assert SPACE.is_valid(strategy.ask())
    strategy.close()
