"""Exports (issue 10): every format reproduces the module, over every zoo entry and 20 random
samples of each search space; the ``py`` source runs where litenas cannot be imported; weights
that do not fit are named; the CLI.

The corpus is exported once per session by two worker processes (one torch thread each), the
``py`` and TorchScript files are run by two pythons that cannot import litenas, then each case
and format is checked. Each network gets calibrated weights (random BN affine, running
statistics measured on random data, logits scaled to unit spread) so outputs are O(1) and the
1e-5 bound means something; 224-pixel networks run at a smaller resolution (same modules).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import Arch, ArchError, Block, LiteNet, build_model, load
from nas.cli import main
from nas.export import FORMATS, ExportError, check_input, export
from nas.export.onnx import onnxruntime_available
from nas.export.pysource import PySourceError, generate
from search_spaces import zoo
from search_spaces.mobile import MobileSpace
from search_spaces.space import SearchSpace
from search_spaces.spaces import get_space, space_names

SAMPLES = 20
# TorchScript and ONNX exports cost 1-2 s of CPU per network (scripting and tracing visit every
# submodule), so within the test budget they run on every zoo entry and the first HEAVY_SAMPLES
# samples of each space; LITENAS_FULL_EXPORT_TESTS=1 runs them on all samples.
HEAVY = ("torchscript", "onnx")
HEAVY_SAMPLES = SAMPLES if os.environ.get("LITENAS_FULL_EXPORT_TESTS") else 3
# Checked by pythons that cannot import litenas (the others in the worker that exports them).
ISOLATED_FORMATS = ("py", "torchscript")
TOL = 1e-5
WORKERS = 2
VAR_FLOOR = 0.2
B = Block.make


def _small(arch: Arch) -> Arch:
    """The same network at the smallest of 32 or 64 pixels that it accepts (never larger)."""
    for res in (32, 64):
        if res < arch.resolution:
            try:
                return arch.replace(resolution=res)
            except ArchError:
                continue
    return arch


def _spaces() -> list[SearchSpace]:
    return [get_space(name) for name in space_names()]


def _cases() -> dict[str, Arch]:
    cases = {f"zoo_{name}": _small(zoo.get(name)) for name in zoo.names()}
    for space in _spaces():
        rng = np.random.default_rng(0)
        for i in range(SAMPLES):
            cases[f"{space.name}_{i:02d}"] = _small(space.sample(rng))
    # An op no shipped space offers by default (Fused-MBConv) enters through a space built with it.
    fused = MobileSpace(resolution=32, num_classes=10, templates=("er_k3_e4", "er_k5_e1_se0.25", "skip"))
    cases["fused_00"] = fused.sample(np.random.default_rng(0))
    return cases


CASES = _cases()


def _calibrate(model: LiteNet, seed: int) -> LiteNet:
    """Weights with O(1) activations, as a trained network has (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.reset_running_stats()
                m.momentum = None  # cumulative average: the statistics of the batch below
        arch = model.arch
        model.train()(torch.randn(8, arch.in_chans, arch.resolution, arch.resolution, generator=gen))
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # no near-dead channel amplifies rounding 300-fold
                m.running_var.clamp_(min=VAR_FLOOR)
        fc = model.head.classifier
        spread = model(check_input(arch)).std().item()
        if isinstance(fc, nn.Linear) and spread > 0:
            fc.weight.mul_(1.0 / spread)
    return model


def _paths(folder: Path, name: str) -> dict[str, Path]:
    # py writes its weights beside it as NAME.pt, so the pt export gets another name.
    return {"pt": folder / f"{name}_model.pt", "torchscript": folder / f"{name}.ts",
            "onnx": folder / f"{name}.onnx", "py": folder / f"{name}.py"}


def _formats(name: str) -> tuple[str, ...]:
    if name.startswith("zoo_") or int(name.rsplit("_", 1)[1]) < HEAVY_SAMPLES:
        return FORMATS
    return tuple(f for f in FORMATS if f not in HEAVY)


PAIRS = [(name, fmt) for name in CASES for fmt in _formats(name)]


def _export_case(job: tuple[str, str, str]) -> dict[str, dict[str, Any]]:
    """Worker: calibrate one network, export it, report each check (except for the
    ISOLATED_FORMATS, checked later where litenas cannot be imported)."""
    name, arch_json, folder = job
    torch.set_num_threads(1)
    arch = Arch.from_json(arch_json)
    torch.manual_seed(0)
    model = _calibrate(build_model(arch), seed=len(name))
    x = check_input(arch)
    with torch.no_grad():
        torch.save({"x": x, "expected": model(x)}, Path(folder) / f"{name}_io.pt")
    out: dict[str, dict[str, Any]] = {}
    paths = _paths(Path(folder), name)
    for fmt in _formats(name):
        try:
            r = export(model, fmt, paths[fmt], check=fmt not in ISOLATED_FORMATS)
            out[fmt] = {"diff": r.max_abs_diff, "method": r.method}
        except Exception as exc:  # reported by the test of this case and format
            out[fmt] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


ISOLATED = r'''
import importlib.util, json, runpy, sys
import torch

for name in ("nas", "search_spaces"):
    assert importlib.util.find_spec(name) is None, f"{name} is importable: not isolated"
torch.set_num_threads(1)
manifest, report_path = sys.argv[1], sys.argv[2]
entries = json.load(open(manifest))
report = {}
for entry in entries:
    io = torch.load(entry["io"], weights_only=True)
    got = {}
    try:
        net = runpy.run_path(entry["py"], run_name="exported_net")["load"]()
        with torch.no_grad():
            got["py"] = (net(io["x"]) - io["expected"]).abs().max().item()
    except Exception as exc:
        got["py"] = f"{type(exc).__name__}: {exc}"
    if entry["ts"]:
        try:
            with torch.no_grad(), torch.jit.optimized_execution(False):
                net = torch.jit.load(entry["ts"])
                got["torchscript"] = (net(io["x"]) - io["expected"]).abs().max().item()
        except Exception as exc:
            got["torchscript"] = f"{type(exc).__name__}: {exc}"
    report[entry["name"]] = got
sys.argv = [entries[0]["py"]]
runpy.run_path(entries[0]["py"], run_name="__main__")  # as `python NET.py`
json.dump(report, open(report_path, "w"))
'''


def _isolated_env() -> dict[str, str]:
    """Environment of a python that sees torch but not litenas: no site processing (so the
    editable install's path hook is not loaded), torch's own folder as the only extra path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(Path(torch.__file__).resolve().parent.parent)
    return env


def _run_isolated(folder: Path, outside: Path, results: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The py and TorchScript files, checked by WORKERS pythons (cwd outside the repository)
    that cannot import litenas."""
    entries = [
        {"name": name, "io": str(folder / f"{name}_io.pt"), "py": str(_paths(folder, name)["py"]),
         "ts": str(_paths(folder, name)["torchscript"]) if "diff" in results[name].get("torchscript", {}) else None}
        for name in CASES if "error" not in results[name]["py"]
    ]
    (folder / "isolated.py").write_text(ISOLATED)
    procs = []
    for i in range(WORKERS):
        (folder / f"manifest{i}.json").write_text(json.dumps(entries[i::WORKERS]))
        cmd = [sys.executable, "-S", "-s", str(folder / "isolated.py"), str(folder / f"manifest{i}.json"),
               str(folder / f"report{i}.json")]
        procs.append(subprocess.Popen(cmd, cwd=outside, env=_isolated_env(), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    report: dict[str, Any] = {}
    done = []
    for i, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=600)
        done.append((proc.returncode, stdout, stderr))
        if proc.returncode == 0:
            report.update(json.loads((folder / f"report{i}.json").read_text()))
    return report, done


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("exports")
    jobs = [(name, arch.to_json(), str(folder)) for name, arch in CASES.items()]
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = dict(zip(CASES, pool.map(_export_case, jobs), strict=True))
    isolated, procs = _run_isolated(folder, tmp_path_factory.mktemp("outside"), results)
    return {"folder": folder, "results": results, "isolated": isolated, "procs": procs}


def test_corpus_covers_zoo_spaces_and_every_registered_op() -> None:
    from search_spaces.registry import op_names

    assert sum(n.startswith("zoo_") for n in CASES) == len(zoo.names())
    for space in _spaces():
        assert sum(n.startswith(f"{space.name}_") for n in CASES) == SAMPLES
    used = {b.op for a in CASES.values() for b in (a.stem, *a.blocks, a.head)}
    assert used == set(op_names()), f"no network of the corpus uses {sorted(set(op_names()) - used)}"


@pytest.mark.parametrize(("case", "fmt"), PAIRS)
def test_export_matches_module(exported: dict[str, Any], case: str, fmt: str) -> None:
    r = exported["results"][case][fmt]
    assert "error" not in r, r.get("error")
    if fmt == "onnx" and not onnxruntime_available():
        pytest.skip("onnxruntime is not installed")
    diff = exported["isolated"].get(case, {}).get(fmt) if fmt in ISOLATED_FORMATS else r["diff"]
    assert isinstance(diff, float) and diff <= TOL, diff
    if fmt == "torchscript":
        assert r["method"] == "script"  # every op is scriptable; tracing is only the fallback


def test_py_and_torchscript_run_without_litenas(exported: dict[str, Any]) -> None:
    for returncode, stdout, stderr in exported["procs"]:
        assert returncode == 0, stderr[-3000:]
        assert ": input (1, " in stdout  # the `python NET.py` run
    isolated = exported["isolated"]
    assert set(isolated) == set(CASES)
    ts = [name for name, got in isolated.items() if "torchscript" in got]
    assert len(ts) == sum("torchscript" in _formats(name) for name in CASES)


def test_generated_source_is_ruff_clean(exported: dict[str, Any]) -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    files = [str(p) for p in sorted(exported["folder"].glob("*.py")) if p.name != "isolated.py"]
    proc = subprocess.run([ruff, "check", "--isolated", "--no-cache", "--select", "E,F,W,I,B,UP",
                           "--ignore", "E501", "--target-version", "py310", *files],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


# ------------------------------------------------------------------------------------ pt, weights
def small_arch(**changes: Any) -> Arch:
    arch = Arch(
        resolution=32, num_classes=10, stem=B("cn", out_chs=16, stride=2),
        blocks=(B("ir", out_chs=24, exp_ratio=4, kernel=(3, 5), stride=2, se_ratio=0.25),
                B("ghost", out_chs=24, mid_chs=48)),
        head=B("hp", hidden=64),
    )
    return arch.replace(**changes) if changes else arch


def test_pt_roundtrip_rebuilds_module_with_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model(small_arch())
    export(model, "pt", tmp_path / "m.pt")
    data = torch.load(tmp_path / "m.pt", weights_only=True)  # plain data: no pickled code
    assert data["format"] == "litenas.model" and data["version"] == 1
    assert Arch.from_json(data["arch"]) == model.arch
    back = load(tmp_path / "m.pt")
    assert isinstance(back, LiteNet) and not back.training and back.arch == model.arch
    x = check_input(model.arch)
    with torch.no_grad():
        assert torch.equal(back(x), model.eval()(x))


def test_load_refuses_pickled_objects_and_plain_state_dicts(tmp_path: Path) -> None:
    torch.save({"format": "litenas.model", "version": 1, "arch": ArchError("x")}, tmp_path / "evil.pt")
    with pytest.raises(ExportError, match="weights_only"):
        load(tmp_path / "evil.pt")
    torch.save(build_model(small_arch()).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ExportError, match="needs its description"):
        load(tmp_path / "sd.pt")


def test_weights_from_state_dict_or_model_file(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = build_model(small_arch()).eval()
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    x = check_input(model.arch)
    for weights in (tmp_path / "sd.pt", model.state_dict()):
        r = export(small_arch(), "pt", tmp_path / "a.pt", weights=weights)
        assert r.max_abs_diff == 0.0
        with torch.no_grad():
            assert torch.equal(load(r.path)(x), model(x))
    r = export(small_arch(), "torchscript", tmp_path / "b.ts", weights=tmp_path / "a.pt")
    assert r.weights == str(tmp_path / "a.pt") and r.method == "script"


def test_weights_that_do_not_fit_name_every_mismatch(tmp_path: Path) -> None:
    other = small_arch(num_classes=7, blocks=(B("ir", out_chs=32, exp_ratio=4, stride=2),))
    torch.save(build_model(other).state_dict(), tmp_path / "other.pt")
    (tmp_path / "out.pt").write_bytes(b"previous")
    with pytest.raises(ExportError) as err:
        export(small_arch(), "pt", tmp_path / "out.pt", weights=tmp_path / "other.pt")
    msg = str(err.value)
    assert re.search(r"do not fit the description \(\d+ missing, \d+ unexpected, 3 shape mismatches\)", msg)
    assert re.search(r"\n  missing: blocks\.0\.\S+ \[[\d, ]+\]\n", msg)
    assert re.search(r"\n  missing: \.\.\. and \d+ more\n", msg)  # long lists are cut
    assert re.search(r"\n  unexpected: blocks\.0\.\S+ \[[\d, ]+\]\n", msg)
    assert "shape mismatch: head.hidden.0.weight: weights [64, 32], model [64, 24]" in msg
    assert "shape mismatch: head.classifier.weight: weights [7, 64], model [10, 64]" in msg
    assert (tmp_path / "out.pt").read_bytes() == b"previous"  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pt", "out.pt"]


def test_export_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export(small_arch(), "tflite", tmp_path / "x")
    with pytest.raises(ValueError, match="must end in .py"):
        export(small_arch(), "py", tmp_path / "x.txt")
    with pytest.raises(ValueError, match="with an Arch"):
        export(build_model(small_arch()), "pt", tmp_path / "x.pt", weights={})
    with pytest.raises(ExportError, match="no such file"):
        export(small_arch(), "pt", tmp_path / "x.pt", weights=tmp_path / "missing.pt")


def test_export_keeps_the_training_mode_and_leaves_no_temp_files(tmp_path: Path) -> None:
    model = build_model(small_arch())
    model.train()
    for fmt, name in (("pt", "a.pt"), ("torchscript", "b.ts"), ("py", "c.py")):
        export(model, fmt, tmp_path / name)
    assert model.training
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.ts", "c.pt", "c.py"]
    assert (tmp_path / "c.py").stat().st_mode & 0o044  # usual permissions, not mkstemp's 0600


def test_torchscript_falls_back_to_tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unscriptable(module: nn.Module) -> None:
        raise RuntimeError("some op is not scriptable")

    monkeypatch.setattr(torch.jit, "script", unscriptable)
    r = export(small_arch(), "torchscript", tmp_path / "m.ts")
    assert r.method == "trace" and r.max_abs_diff == 0.0


def test_failed_check_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.export.onnx as onnx_format

    if not onnxruntime_available():
        pytest.skip("onnxruntime is not installed")
    monkeypatch.setattr(onnx_format, "run_onnxruntime", lambda path, x: torch.ones(2, 10))
    with pytest.raises(ExportError, match=r"the onnx export differs from the module .* nothing was kept"):
        export(small_arch(), "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_without_onnxruntime_is_exported_unchecked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import nas.export.onnx as onnx_format

    monkeypatch.setattr(onnx_format, "onnxruntime_available", lambda: False)
    small_arch().save(tmp_path / "arch.json")
    assert main(["export", str(tmp_path / "arch.json"), "-f", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    assert "not checked (onnxruntime is not installed)" in capsys.readouterr().out
    assert (tmp_path / "m.onnx").stat().st_size > 0


# ------------------------------------------------------------------------------------ py source
SCALE = 0.5


def _gate(x: torch.Tensor) -> torch.Tensor:
    return F.hardsigmoid(x) * SCALE


class _Scaled(nn.Module):
    """Not a litenas op: a parameter and a buffer of its own, a helper function, a constant."""

    def __init__(self, chs: int):
        super().__init__()
        self.conv = nn.Conv2d(chs, chs, 3, padding=1)
        self.gamma = nn.Parameter(torch.randn(1, chs, 1, 1))
        self.register_buffer("shift", torch.randn(chs))
        self.order = (2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _gate(self.conv(x)) * self.gamma + self.shift.view(1, -1, 1, 1)
        return y[:, list(self.order)]


def test_py_source_copies_any_torch_only_module(tmp_path: Path) -> None:
    model = nn.Sequential(_Scaled(3), nn.ReLU(), _Scaled(3)).eval()
    source = generate(model, docstring="Test.", weights_file="w.pt", input_shape=(3, 8, 8))
    assert "def _gate(" in source and "SCALE = 0.5" in source and "import torch.nn.functional as F" in source
    (tmp_path / "net.py").write_text(source)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    ns: dict[str, Any] = {"__file__": str(tmp_path / "net.py"), "__name__": "net"}
    exec(compile(source, str(tmp_path / "net.py"), "exec"), ns)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(ns["load"]()(x), model(x))


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.ReLU()
        self.b = self.a


def test_py_source_refuses_what_it_cannot_write() -> None:
    with pytest.raises(PySourceError, match="used twice"):
        generate(_Shared(), docstring="", weights_file="w.pt", input_shape=(1,))
    model = _Scaled(2)
    model.order = np.arange(3)
    with pytest.raises(PySourceError, match="_Scaled.order holds a ndarray"):
        generate(model, docstring="", weights_file="w.pt", input_shape=(1,))


# ------------------------------------------------------------------------------------ CLI
def test_cli_export_json_summary_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = small_arch()
    arch.save(tmp_path / "arch.json")
    assert main(["export", str(tmp_path / "arch.json"), "--format", "py", "--out", str(tmp_path / "net.py"),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "py" and summary["files"] == [str(tmp_path / "net.py"), str(tmp_path / "net.pt")]
    assert summary["arch_hash"] == arch.hash() and summary["max_abs_diff"] == 0.0
    assert main(["export", str(tmp_path / "arch.json"), "-f", "onnx", "-o", str(tmp_path / "net.onnx"),
                 "--weights", str(tmp_path / "net.pt")]) == 0
    assert "opset 17" in capsys.readouterr().out
    torch.save({"stem.conv.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    assert main(["export", str(tmp_path / "arch.json"), "-f", "pt", "-o", str(tmp_path / "x.pt"),
                 "-w", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert "nas export: error:" in err and "shape mismatch: stem.conv.weight: weights [1], model [16, 3, 3, 3]" in err
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0 and "--weights CKPT" in capsys.readouterr().out
