"""The one-shot supernet: inherited weights are the supernet's slices, BN re-calibration touches
only BN statistics, the sandwich rule trains through the shared Trainer, and the evaluator is
deterministic and refuses candidates outside the supernet's part of the space."""

from __future__ import annotations

import pytest
import torch

from evaluators import TrainConfig, synthetic
from evaluators.supernet import OneShotSupernet, SupernetAccuracy, recalibrate_bn, sandwich_loss
from evaluators.training.engine import Trainer
from evaluators.training.plan import plan_for
from evaluators.training.sources import InMemoryBatches
from search_spaces.layerwise import ViewSpace, layerwise_view
from search_spaces.spaces import get_space

VIEW = layerwise_view(get_space("fbnet", resolution=32, num_classes=4))


@pytest.fixture(scope="module")
def supernet() -> OneShotSupernet:
    torch.manual_seed(0)
    return OneShotSupernet(VIEW)


def test_inherited_network_is_the_supernet_path(supernet: OneShotSupernet) -> None:
    path = supernet.random_path(torch.Generator().manual_seed(1))
    net = supernet.subnet(path)
    assert net.arch == VIEW.arch(path)
    x = torch.randn(2, 3, 32, 32)
    supernet.eval()
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), supernet.use(path)(x), atol=1e-5)
    supernet.use(None)
    state = supernet.state_dict()
    shared = 0
    for k, v in net.state_dict().items():  # every tensor is the supernet's own or a slice of a shared one
        i = int(k.split(".")[1]) if k.startswith("blocks.") else None
        src = k if i is None else f"layers.{i}.{path[i]}." + k.split(".", 2)[2]
        if src in state:
            assert torch.equal(v, state[src]), k
        else:
            name = k.split(".", 2)[2]
            (b,) = [b for b in supernet._bindings[i][path[i]] if b.name == name]
            assert torch.equal(v, state[f"shared.{i}.{b.key}"][b.cut]), k
            shared += 1
    assert shared > 0
    assert supernet.largest_path() != supernet.smallest_path()


def test_candidates_of_a_layer_share_their_parts() -> None:
    """Once-for-All's elastic kernel and width: a step of one candidate moves the weights that a
    smaller or narrower candidate of the same layer inherits; a candidate of another op keeps its own."""
    torch.manual_seed(0)
    sn = OneShotSupernet(VIEW)
    layer = VIEW.layers[3]
    irs = [k for k, c in enumerate(layer.configs) if c.op == "ir"]
    big = max(irs, key=lambda k: sn._macs[3][k])
    small = min(irs, key=lambda k: sn._macs[3][k])
    path = list(sn.smallest_path())
    path[3] = big
    before = sn.subnet_state_dict([*path[:3], small, *path[4:]])
    opt = torch.optim.SGD(sn.parameters(), lr=0.5)
    sn.train().use(path)
    sn(torch.randn(4, 3, 32, 32)).sum().backward()
    opt.step()
    after = sn.subnet_state_dict([*path[:3], small, *path[4:]])
    moved = {k for k in before if k.startswith("blocks.3.") and not torch.equal(before[k], after[k])}
    assert any("weight" in k for k in moved)  # trained through the big candidate's step
    assert all(p.grad is None for k, ops in enumerate(sn.layers) for i, op in enumerate(ops)
               if i != path[k] for p in op.parameters())  # unshared weights of other candidates untouched


def test_bn_recalibration_changes_only_bn_statistics(supernet: OneShotSupernet) -> None:
    net = supernet.subnet(supernet.smallest_path())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    recalibrate_bn(net, [torch.randn(8, 3, 32, 32) * 2 + 1 for _ in range(3)])
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert not net.training


def test_sandwich_training_and_deterministic_evaluator() -> None:
    torch.manual_seed(0)
    sn = OneShotSupernet(VIEW)
    data = synthetic(num_classes=4, resolution=32, train_per_class=16, test_per_class=8)
    before = {k: v.clone() for k, v in sn.state_dict().items()}
    trainer = Trainer(sn, InMemoryBatches(data), TrainConfig(steps=2, batch_size=16), plan_for("cpu", threads=1),
                      step_loss=sandwich_loss(sn, randoms=1))
    trainer.fit(evaluate="none")
    big, small = sn.largest_path(), sn.smallest_path()
    after = sn.state_dict()
    for path in (big, small):  # both ends of the sandwich were trained
        keys = [k for i, c in enumerate(path) for k in after if k.startswith(f"layers.{i}.{c}.")]
        assert keys and any(not torch.equal(before[k], after[k]) for k in keys)
    ev = SupernetAccuracy(sn, data, identity={"space": "fbnet"}, bn_batches=2, batch_size=16, seed=3, threads=1)
    arch = ViewSpace(VIEW).sample(5)
    a, b = ev(arch), ev(arch)
    assert a.ok and a.metrics == b.metrics and 0 <= a["top1"] <= 100
    with pytest.raises(ValueError):
        ev(get_space("mobile", resolution=32, num_classes=4).sample(0))  # outside the supernet's space


def test_view_space_is_the_supernets_part_of_mobile() -> None:
    space = get_space("mobile", resolution=32, num_classes=10)
    view_space = ViewSpace(layerwise_view(space))
    arch = view_space.sample(0)
    assert view_space.decode(view_space.encode(arch)) == arch and space.encode(arch)  # a point of both
    with pytest.raises(ValueError, match="the supernet fixes"):
        view_space.encode(space.sample(3))


def test_train_once_then_search_by_inherited_weights(tmp_path, capsys) -> None:
    import json

    from test_search_runner import fake_table

    from nas.cli import main

    table = fake_table(tmp_path / "fbnet32.json")
    sn_dir = tmp_path / "supernet"
    assert main(["supernet", "train", "--space", "fbnet", "--resolution", "32", "--data", "synthetic",
                 "--train-per-class", "8", "--epochs", "1", "--batch-size", "40", "--randoms", "1",
                 "--threads", "1", "--out", str(sn_dir), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and (sn_dir / "weights.pt").is_file() and summary["final"]["train_loss"] > 0
    search = ["search", "--space", "fbnet", "--resolution", "32", "--strategy", "evolution", "--population", "4",
              "--sample-size", "2", "--latency-table", str(table), "--evaluator", "supernet", "--supernet",
              str(sn_dir), "--data", "synthetic", "--max-latency-ms", "50", "--no-zoo", "--quiet",
              "--threads", "1", "--out", str(tmp_path / "run"), "--json"]
    assert main([*search, "--budget", "3"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["evaluated"] == 3 and "top1" in first["best"]["metrics"]
    assert main([*search, "--budget", "5"]) == 0  # resumed: three reused, two new
    assert json.loads(capsys.readouterr().out)["evaluated"] == 5
    # a supernet of another task is refused before the search starts, naming both sides
    other = [a if a != "32" else "64" for a in search]
    assert main([*other, "--budget", "1", "--out", str(tmp_path / "r2")]) == 2
    assert "resolution 32 (supernet) vs 64 (search)" in capsys.readouterr().err


def test_supernet_holds_out_the_images_a_search_ranks_on(tmp_path, capsys) -> None:
    import json

    import numpy as np
    from PIL import Image
    from test_search_runner import fake_table

    from evaluators.datasets import Holdout
    from nas.cli import main

    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 4)):
        for label in ("a", "b"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    sn_dir = tmp_path / "supernet"
    assert main(["supernet", "train", "--space", "fbnet", "--resolution", "32", "--num-classes", "2", "--data",
                 str(tmp_path / "data"), "--holdout-per-class", "4", "--epochs", "1", "--batch-size", "16",
                 "--randoms", "0", "--threads", "1", "--out", str(sn_dir), "--quiet"]) == 0
    identity = json.loads((sn_dir / "config.json").read_text())["identity"]
    assert identity["supernet"]["holdout"] == Holdout(4, 0).to_dict()
    assert identity["data"]["train"] == 2 * (20 - 4)  # the held-out images never trained the supernet
    capsys.readouterr()
    search = ["search", "--space", "fbnet", "--resolution", "32", "--strategy", "random", "--budget", "2",
              "--latency-table", str(fake_table(tmp_path / "fbnet32.json", num_classes=2)), "--evaluator", "supernet",
              "--supernet", str(sn_dir), "--data", str(tmp_path / "data"), "--max-latency-ms", "50", "--no-zoo",
              "--quiet", "--threads", "1"]
    assert main([*search, "--test-per-class", "5", "--out", str(tmp_path / "r1")]) == 2
    assert "held out 4 images per class" in capsys.readouterr().err
    search += ["--test-per-class", "3", "--train-per-class", "8"]  # a part of what it held out
    assert main([*search, "--out", str(tmp_path / "r2"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluated"] == 2


def test_mixed_kernel_groups_are_cut_from_the_plain_depthwise_weight() -> None:
    """A MixConv candidate's channel groups share the depthwise tensor of the single-kernel
    candidates, each at its channel offset (a mixed kernel is a per-channel kernel choice)."""
    view = layerwise_view(get_space("mobile", resolution=32, num_classes=10))
    sn = OneShotSupernet(view)
    layer = view.layers[3]
    mixed = next(k for k, c in enumerate(layer.configs) if c.op == "ir" and dict(c.args)["kernel"] == (3, 5))
    plain = next(k for k, c in enumerate(layer.configs) if c.op == "ir" and dict(c.args)["kernel"] == 5
                 and dict(c.args)["exp_ratio"] == dict(layer.configs[mixed].args)["exp_ratio"])
    dw_plain = {b.key for b in sn._bindings[3][plain] if b.name.endswith("conv.weight") and "body.1." in b.name}
    groups = sorted((b for b in sn._bindings[3][mixed] if ".convs." in b.name), key=lambda b: b.name)
    assert len(groups) == 2 and {b.key for b in groups} == dw_plain
    split = sn.layers[3][mixed].body[1].dw.conv.splits
    assert [b.cut[0].start for b in groups] == [0, split[0]]  # each group at its own channels
    assert [b.cut[2].stop - b.cut[2].start for b in groups] == [3, 5]  # the centre of the shared kernel
    path = list(sn.smallest_path())
    path[3] = mixed
    net = sn.subnet(path)  # the inherited network is exactly the supernet path
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), sn.eval().use(path)(x), atol=1e-5)


def test_spaces_declare_their_layerwise_part() -> None:
    """Each space says which part a supernet can hold (``SearchSpace.layerwise_part``) and whether
    that part is all of it; the view module knows no space by name."""
    mobile = layerwise_view(get_space("mobile", resolution=32, num_classes=4))
    assert VIEW.whole and not mobile.whole and ViewSpace(mobile).layerwise_part().whole
    assert get_space("mnasnet").layerwise_part() is None
    with pytest.raises(ValueError, match="'hardnet' has no layer-wise part"):
        layerwise_view(get_space("hardnet"))
    with pytest.raises(ValueError, match="one input size"):
        layerwise_view(get_space("mobile"))
