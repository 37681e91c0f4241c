"""``nas train``: the run directory, resumption after SIGKILL, refusal of another run, fine-tuning,
devices, bad input, streaming, and agreement with the search's train evaluator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators import TrainConfig, TrainedAccuracy, synthetic
from evaluators.train import build_seeded
from evaluators.training.engine import Trainer
from evaluators.training.plan import plan_for
from evaluators.training.sources import InMemoryBatches
from nas.arch import Arch, Block, legacy_hash
from nas.cli import main
from nas.export import export, load
from nas.train import train

FAST = ["--batch-size", "16", "--threads", "1", "--quiet"]


def tiny(classes: int = 4, resolution: int = 16) -> Arch:
    return Arch(resolution=resolution, num_classes=classes, stem=Block.make("cn", out_chs=8),
                blocks=(Block.make("ir", out_chs=8, exp_ratio=2),
                        Block.make("ir", out_chs=16, exp_ratio=2, stride=2)),
                head=Block.make("hc", out_chs=32, dropout=0.1))


@pytest.fixture
def arch_file(tmp_path: Path) -> Path:
    return tiny().save(tmp_path / "tiny.json")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_and_export(arch_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "4", "--json",
                 *FAST]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["epochs_done"] == 4 and summary["final"]["test_top1"] > 75
    for name in ("config.json", "arch.json", "checkpoint.pt", "metrics.json", "curve.png", "weights.pt", "best.pt"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["recipe"]["epochs"] == 4 and config["identity"]["recipe"]["optimizer"] == "sgd"
    assert config["plan"] == {"device": "cpu", "precision": "fp32", "memory_format": "channels_last",
                              "compile": False}
    rows = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert all({"train_loss", "test_top1", "test_top5", "test_loss", "lr", "images_per_s"} <= set(r) for r in rows)
    assert Arch.load(out / "arch.json") == tiny()
    # weights.pt: a plain state dict for torch.load(weights_only=True), accepted by nas export --weights
    state = weights(out / "weights.pt")
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert main(["export", str(out / "arch.json"), "--format", "pt", "--out", str(tmp_path / "net.pt"),
                 "--weights", str(out / "weights.pt")]) == 0
    assert same_weights(load(tmp_path / "net.pt").state_dict(), state)
    # a finished run started again does nothing and reports the same
    capsys.readouterr()
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "4", "--json",
                 *FAST]) == 0
    assert json.loads(capsys.readouterr().out)["final"] == summary["final"]


def _cmd(arch_file: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas", "train", str(arch_file), "--data", "synthetic", "--out", str(out),
            "--epochs", "5", "--ema-decay", "0.9", "--augment", "trivialaugment", "--cutout", "4", *FAST, *extra]


def test_sigkill_then_resume_gives_the_weights_of_an_uninterrupted_run(arch_file: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cmd(arch_file, whole), check=True, env=env, timeout=300, capture_output=True)
    proc = subprocess.Popen(_cmd(arch_file, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (killed / "checkpoint.pt").exists():
        time.sleep(0.02)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(json.loads((killed / "metrics.json").read_text())["epochs"]) if (killed / "metrics.json").exists() \
        else 0
    assert done < 5, "the run finished before it could be killed; make the epochs longer"
    subprocess.run(_cmd(arch_file, killed), check=True, env=env, timeout=300, capture_output=True)
    assert same_weights(weights(whole / "weights.pt"), weights(killed / "weights.pt"))
    a = json.loads((whole / "metrics.json").read_text())["epochs"]
    b = json.loads((killed / "metrics.json").read_text())["epochs"]
    assert [r["test_top1"] for r in a] == [r["test_top1"] for r in b]
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]


def test_another_recipe_or_architecture_in_the_same_directory_is_refused(arch_file: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "1", *FAST]) == 0
    capsys.readouterr()
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "1", "--lr", "0.05",
                 *FAST]) == 2
    err = capsys.readouterr().err
    assert "recipe.lr 0.1 -> 0.05" in err and err.count("\n") == 1
    other = tiny(resolution=16).replace(blocks=(Block.make("ir", out_chs=8, exp_ratio=3),))
    assert main(["train", str(other.save(tmp_path / "other.json")), "--data", "synthetic", "--out", str(out),
                 "--epochs", "1", *FAST]) == 2
    assert "arch " in capsys.readouterr().err
    # the execution may change (threads, memory format): same run
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "1",
                 "--memory-format", "contiguous", *FAST]) == 0


def test_a_run_begun_under_the_legacy_hash_resumes(arch_file: Path, tmp_path: Path) -> None:
    # A run directory written by a litenas whose architecture hash covered every argument.
    out = tmp_path / "run"
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "1", *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["arch"] == tiny().hash() != legacy_hash(tiny())
    for stored, rc in ((legacy_hash(tiny()), 0), ("0123456789abcdef", 2)):
        config["identity"]["arch"] = stored
        (out / "config.json").write_text(json.dumps(config))
        assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "1", *FAST]) == rc


def test_fine_tuning_with_frozen_features_changes_only_the_classifier(tmp_path: Path) -> None:
    recipe = TrainConfig(epochs=1, batch_size=16)
    base = train(tiny(), "synthetic", tmp_path / "base", recipe, threads=1, progress=False)
    start = weights(Path(base["weights"]))
    tuned = train(tiny(), "synthetic", tmp_path / "tuned", TrainConfig(epochs=1, batch_size=16, freeze="features",
                                                                       seed=3),
                  init=base["weights"], threads=1, progress=False)
    end = weights(Path(tuned["weights"]))
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    assert changed == {"head.classifier.weight", "head.classifier.bias"}
    # --num-classes: a new classifier, everything else from --init
    five = train(tiny(), "synthetic", tmp_path / "five", TrainConfig(epochs=1, batch_size=16, freeze="features"),
                 init=base["weights"], num_classes=5, threads=1, progress=False)
    new = weights(Path(five["weights"]))
    assert new["head.classifier.weight"].shape[0] == 5
    assert all(torch.equal(start[k], new[k]) for k in start if not k.startswith("head.classifier."))
    assert Arch.load(tmp_path / "five" / "arch.json").num_classes == 5


def test_backbone_learning_rate_scale_splits_the_groups() -> None:
    data = synthetic(train_per_class=8, test_per_class=2)
    trainer = Trainer(build_seeded(tiny(), 0), InMemoryBatches(data), TrainConfig(epochs=1, batch_size=16, backbone_lr_scale=0.1),
                      plan_for("cpu"))
    lrs = sorted({g["lr"] for g in trainer.optimizer.param_groups})
    assert len(trainer.optimizer.param_groups) == 4 and max(lrs) / min(lrs) == pytest.approx(10.0)


def test_init_weights_that_do_not_fit_are_listed(arch_file: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    wrong = export(tiny(classes=7).replace(head=Block.make("hc", out_chs=24)), "pt", tmp_path / "wrong.pt").files[0]
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(tmp_path / "r"), "--epochs", "1",
                 "--init", str(wrong), *FAST]) == 2
    err = capsys.readouterr().err
    assert "do not fit the description" in err and "shape mismatch: head.classifier.weight: weights [7, 24]" in err
    assert not (tmp_path / "r").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(tmp_path / "r"), "--epochs", "1",
                 "--init", str(tmp_path / "junk.pt"), *FAST]) == 2
    assert "junk.pt" in capsys.readouterr().err


@pytest.mark.parametrize("flags,needle", [
    (["--lr", "nan"], "lr must be a number"),
    (["--lr", "-1"], "lr must be a number"),
    (["--epochs", "0"], "epochs must be an integer >= 1"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--weight-decay", "-0.1"], "weight_decay"),
    (["--label-smoothing", "1.5"], "label_smoothing"),
    (["--ema-decay", "1.0"], "ema_decay"),
    (["--optimizer", "lamb"], "optimizer must be one of"),
    (["--num-classes", "0"], "--num-classes must be an integer >= 1"),
    (["--device", "tpu"], "device: expected cpu, cuda, cuda:N or mps"),
    (["--precision", "fp16"], "fp16 needs a GPU"),
    (["--data", "/nonexistent/data"], "--data /nonexistent/data: no such file or folder"),
])
def test_bad_input_is_one_line_and_exit_2(arch_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         flags: list[str], needle: str) -> None:
    argv = ["train", str(arch_file), "--data", "synthetic", "--out", str(tmp_path / "r"), "--epochs", "1", *FAST]
    if flags[0] == "--data":
        argv[3] = flags[1]
    else:
        argv += flags
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written


def test_data_that_does_not_fit_the_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    root = tmp_path / "folder"
    for split, n in (("train", 4), ("test", 2)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(root / split / c / f"{i}.png")
    arch = tiny().save(tmp_path / "a.json")
    assert main(["train", str(arch), "--data", str(root), "--out", str(tmp_path / "r"), "--epochs", "1", *FAST]) == 2
    assert "2 classes, the architecture predicts 4; pass --num-classes 2" in capsys.readouterr().err
    assert main(["train", "ARCH-NOT-THERE", "--data", str(root), "--out", str(tmp_path / "r"), *FAST]) == 2
    assert "neither an architecture file nor a zoo name" in capsys.readouterr().err
    big = tiny(resolution=32).save(tmp_path / "b.json")
    assert main(["train", str(big), "--data", str(root), "--out", str(tmp_path / "r"), "--num-classes", "2",
                 "--no-stream", *FAST]) == 2
    assert "16x16 images, the architecture takes 32x32" in capsys.readouterr().err


def test_diverging_run_stops_with_step_and_lr_and_keeps_the_checkpoint(arch_file: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["train", str(arch_file), "--data", "synthetic", "--out", str(out), "--epochs", "1",
                 "--lr", "1e9", "--warmup-fraction", "0", *FAST]) == 2
    err = capsys.readouterr().err
    assert "training diverged: training loss is" in err and "at step" in err and "(lr " in err
    assert "no epoch finished" in err and not (out / "checkpoint.pt").exists()


def test_streamed_folder_trains_at_the_architecture_resolution(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for split, n in (("train", 12), ("test", 4)):
        for c, colour in (("red", 0), ("green", 1)):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (40, 30, 3), dtype=np.uint8)
                img[..., colour] = 220
                Image.fromarray(img).save(root / split / c / f"{i}.jpg")
    summary = train(tiny(classes=2), str(root), tmp_path / "r", TrainConfig(epochs=2, batch_size=8), threads=1,
                    workers=0, progress=False)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["identity"]["data"]["kind"] == "stream" and summary["complete"]
    assert 0 <= summary["final"]["test_top1"] <= 100 and summary["final"]["test_top5"] == 100  # 2 classes


def test_search_evaluator_and_nas_train_give_the_same_result(tmp_path: Path) -> None:
    recipe = TrainConfig(epochs=2, batch_size=16, seed=1)
    arch = tiny()
    data = synthetic(num_classes=arch.num_classes, resolution=arch.resolution, channels=arch.in_chans, seed=1)
    result = TrainedAccuracy(data, recipe, threads=1, progress=False).evaluate(arch)
    summary = train(arch, "synthetic", tmp_path / "r", recipe, threads=1, progress=False)
    assert result.ok and result["top1"] == summary["final"]["test_top1"]
    assert result.info["top5"] == summary["final"]["test_top5"]


def test_cuda_device(arch_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", str(arch_file), "--data", "synthetic", "--out", str(tmp_path / "r"), "--epochs", "1",
            "--device", "cuda", "--json", *FAST]
    if not torch.cuda.is_available():
        assert main(argv) == 2
        assert "'cuda' is not available on this machine" in capsys.readouterr().err
        pytest.skip("no CUDA device here: checked only that --device cuda is refused cleanly")
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["plan"]["device"] == "cuda" and summary["plan"]["precision"] in ("bf16", "fp16")


def test_help_states_the_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for needle in ("--init", "--freeze", "--num-classes", "--ema-decay", "--augment", "--device", "--precision",
                   "--stream", "Nesterov", "cosine", "label smoothing"):
        assert needle in text, needle


def test_automatic_plan_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluators.training.plan as plan_mod

    monkeypatch.setattr(plan_mod, "cpu_has_native_bf16", lambda: True)
    assert plan_for("cpu", resolution=224).describe() == {"device": "cpu", "precision": "bf16",
                                                          "memory_format": "channels_last", "compile": False}
    assert plan_for("cpu", resolution=32).precision == "fp32"  # bf16 measured slower at CIFAR sizes
    assert plan_for("cpu").precision == "fp32"
    assert plan_for("cpu", resolution=224, precision="fp32", memory_format="contiguous").describe()["precision"] \
        == "fp32"
    monkeypatch.setattr(plan_mod, "cpu_has_native_bf16", lambda: False)
    assert plan_for("cpu", resolution=224).precision == "fp32"  # emulated bf16 is slower everywhere
    with pytest.raises(ValueError, match="precision must be one of"):
        plan_for("cpu", precision="int8")
