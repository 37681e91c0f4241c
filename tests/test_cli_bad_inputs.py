"""Malformed and hostile inputs through the ``nas`` command line, in-process: each is refused with
exit status 2 and one message naming the file or flag, and leaves no partial output behind.
The input files are under ``tests/data/bad/``."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_search_runner import fake_table

import latency_tables
from latency_tables.predict import LatencyPredictor
from latency_tables.table import LatencyTable
from nas.arch import Arch
from nas.cli import main
from nas.io import JSONFileError, read_json_file
from nas.search import runner
from nas.search.dnas.supernet import LatencyModel
from nas.search.store import RunStore, StoreError
from search_spaces.layerwise import layerwise_view
from search_spaces.spaces import get_space

BAD = Path(__file__).parent / "data" / "bad"
GOOD_ARCH = "litenas/1 res32 cls10\nstem cn_c16\nir_c24_s2_e6\nhead hc_c64\n"
SEARCH = ("search --space fbnet --strategy random --latency-table {table} --evaluator proxy --proxy synflow "
          "--data none --budget 2 --max-latency-ms 50 --quiet --no-zoo --out {tmp}/run")
EXPORT = "export {good} --format pt --out {tmp}/out.pt"
PREDICT = SEARCH.replace("--evaluator proxy --proxy synflow", "--evaluator predictor --predictor {file}")
SUPERNET = SEARCH.replace("--proxy synflow --data none", "--data synthetic").replace(
    "--evaluator proxy", "--evaluator supernet --supernet {tmp}/sn")
SUPERNET_TRAIN = "supernet train --space fbnet --resolution 32 --data synthetic --epochs 1 --quiet --out {tmp}/sn"
#: Every JSON file a user can point a reader at is refused in the same words when it is malformed:
#: ({deep} is a 100,000-deep nested JSON, written by the ``deep`` fixture).
MALFORMED_JSON = (("deep", "{deep}", "deep.json", "JSON nested too deeply"),
                  ("array", "{bad}/json_array.json", "json_array.json", "an array where a JSON object belongs"),
                  ("truncated", "{bad}/json_truncated.json", "json_truncated.json", "not valid JSON, truncated or corrupt"),
                  ("not-utf8", "{bad}/json_not_utf8.json", "json_not_utf8.json", "not UTF-8 text"))

# (id, command line, what the message must name, files copied in first: destination -> source)
CASES: list[tuple[str, str, tuple[str, ...], dict[str, str]]] = [
    ("arch-deep-json", "export {bad}/arch_deep.json --format pt --out {tmp}/out.pt",
     ("arch_deep.json", "nested too deeply"), {}),
    ("arch-not-utf8", "export {bad}/arch_not_utf8.json --format pt --out {tmp}/out.pt", ("arch_not_utf8.json",), {}),
    ("arch-truncated", "export {bad}/arch_truncated.json --format pt --out {tmp}/out.pt",
     ("arch_truncated.json", "not valid JSON"), {}),
    ("arch-unknown-op", "export {bad}/arch_unknown_op.txt --format pt --out {tmp}/out.pt",
     ("arch_unknown_op.txt", "warp"), {}),
    *[(f"arch-{name}", f"export {{bad}}/arch_{name}.txt --format onnx --out {{tmp}}/out.onnx",
       (f"arch_{name}.txt", "too large", "LITENAS_MAX_MODEL_GB"), {})
      for name in ("huge_channels", "huge_kernel", "huge_expansion", "huge_resolution")],
    ("export-opset-5", "export {good} --format onnx --opset 5 --out {tmp}/out.onnx", ("--opset",), {}),
    ("export-out-directory", "export {good} --format pt --out {tmp}/adir", ("adir", "directory"), {"adir/keep": ""}),
    ("config-nan", SEARCH + " --config {bad}/config_nan_latency.yaml", ("config_nan_latency.yaml", "max_latency_ms"), {}),
    ("config-inf", SEARCH + " --config {bad}/config_inf_latency.yaml", ("config_inf_latency.yaml", "max_latency_ms"), {}),
    ("config-negative-budget", SEARCH + " --config {bad}/config_negative_budget.yaml",
     ("config_negative_budget.yaml", "budget"), {}),
    ("config-negative-seed", SEARCH + " --config {bad}/config_negative_seed.yaml",
     ("config_negative_seed.yaml", "seed"), {}),
    ("config-not-utf8", SEARCH + " --config {bad}/config_not_utf8.yaml", ("config_not_utf8.yaml", "UTF-8"), {}),
    ("config-deep", SEARCH + " --config {bad}/config_deep.yaml", ("config_deep.yaml", "nested too deeply"), {}),
    ("config-list", SEARCH + " --config {bad}/config_list.yaml", ("config_list.yaml", "mapping"), {}),
    ("config-directory", SEARCH + " --config {bad}", ("bad", "directory"), {}),
    ("flag-nan", SEARCH + " --max-latency-ms nan", ("--max-latency-ms", "nan"), {}),
    ("flag-inf", SEARCH + " --max-latency-ms inf", ("--max-latency-ms", "inf"), {}),
    ("flag-negative", SEARCH + " --max-params -5", ("--max-params",), {}),
    ("flag-zero-budget", SEARCH + " --budget 0", ("--budget",), {}),
    ("flag-negative-seed", SEARCH + " --seed -1", ("--seed",), {}),
    ("flag-not-a-number", SEARCH + " --reward-w fast", ("--reward-w", "fast"), {}),
    ("storage-url", SEARCH + " --storage foo://bar", ("storage", "foo://bar"), {}),
    ("out-is-a-file", SEARCH.replace("{tmp}/run", "{tmp}/file"), ("out", "file"), {"file": ""}),
    ("table-zero-entry", SEARCH.replace("{table}", "{bad}/table_zero_entry.json"),
     ("table_zero_entry.json", "median_ms", "> 0"), {}),
    ("table-negative-calibration", SEARCH.replace("{table}", "{bad}/table_negative_calibration.json"),
     ("table_negative_calibration.json", "calibration", "<= 0"), {}),
    ("table-truncated", SEARCH.replace("{table}", "{bad}/table_truncated.json"), ("table_truncated.json",), {}),
    ("study-db-damaged", SEARCH.replace("--data none", "--data synthetic"), ("study.db", "cache"), {"run/study.db": "{bad}/study_not_a_database.db"}),
    ("calibrate-zero-table", "latency calibrate --table {bad}/table_zero_entry.json -n 1",
     ("table_zero_entry.json",), {}),
    ("space-sample-seed", "space sample mobile --seed -1", ("--seed",), {}),
    ("space-sample-n", "space sample mobile -n 0", ("-n",), {}),
    *[case for kind, src, name, why in MALFORMED_JSON for case in (
        (f"predictor-{kind}", PREDICT.replace("{file}", src), (name, "not an accuracy predictor", why), {}),
        (f"predictor-fit-{kind}", f"predictor fit {src} --space mobile --out {{tmp}}/p.json",
         (name, "trained-networks file", why), {}),
        (f"predictor-collect-into-{kind}", f"predictor collect {{tmp}}/run --into {src}", (name, why), {}),
        (f"predictor-collect-run-{kind}", "predictor collect {tmp}/run --into {tmp}/nets.json",
         ("run/config.json", "`nas train` run", why), {"run/config.json": src}),
        (f"search-supernet-{kind}", SUPERNET, ("sn/config.json", "`nas supernet train` run", why),
         {"sn/config.json": src}),
        (f"supernet-train-{kind}", SUPERNET_TRAIN, ("sn/config.json", why, "use another --out"),
         {"sn/config.json": src}),
    )],
    ("search-supernet-missing", SUPERNET, ("sn", "no such directory"), {}),
    ("search-supernet-damaged-weights", SUPERNET, ("sn/weights.pt", "damaged"),
     {"sn/config.json": "{bad}/supernet_config.json", "sn/weights.pt": ""}),
]


def run_cli(argv: list[str]) -> int:
    """``nas ARGV`` in-process; its exit status (argparse's refusals exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return fake_table(tmp_path_factory.mktemp("table") / "fbnet32.json")


@pytest.fixture(scope="module")
def deep(tmp_path_factory) -> Path:
    """A JSON object whose one field nests 100,000 arrays (valid JSON, deeper than Python's parser
    recurses)."""
    path = tmp_path_factory.mktemp("json") / "deep.json"
    path.write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return path


@pytest.mark.parametrize("command,needles,setup", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_it(tmp_path, table, deep, capsys, command, needles, setup) -> None:
    good = tmp_path / "good.txt"
    good.write_text(GOOD_ARCH)
    fill = {"bad": str(BAD), "tmp": str(tmp_path), "table": str(table), "good": str(good), "deep": str(deep)}
    for dst, src in setup.items():
        target = tmp_path / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        if src:
            shutil.copy(src.format(**fill), target)
        else:
            target.write_text("x")
    before = files_under(tmp_path)
    assert run_cli(command.format(**fill).split()) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("nas ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert files_under(tmp_path) == before  # nothing written, nothing changed


def test_an_unexpected_error_is_reported_with_the_log_of_its_traceback(tmp_path, capsys, monkeypatch) -> None:
    import nas.cli.space as space_cli

    def broken(args) -> int:  # noqa: ANN001 - an argparse namespace
        raise RuntimeError("a bug")

    monkeypatch.setenv("LITENAS_CRASH_DIR", str(tmp_path))
    monkeypatch.setattr(space_cli, "_list", broken)
    assert run_cli(["space", "list"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: a bug" in err
    log = Path(re.search(r"traceback is in (\S+);", err).group(1))
    assert log.parent == tmp_path and "Traceback" in log.read_text() and "a bug" in log.read_text()


def test_help_states_one_default_per_flag(capsys) -> None:
    assert run_cli(["search", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert not re.search(r"\(default: [^)]*\) \(default:", text)
    assert "--test-per-class" in text and "(default: a tenth of the smallest class)" in text


def test_the_size_limit_is_an_environment_variable(tmp_path, capsys, monkeypatch) -> None:
    good = tmp_path / "good.txt"
    good.write_text(GOOD_ARCH)
    monkeypatch.setenv("LITENAS_MAX_MODEL_GB", "0.00001")
    assert run_cli(["export", str(good), "--format", "pt", "--out", str(tmp_path / "o.pt")]) == 2
    assert "too large" in capsys.readouterr().err
    monkeypatch.setenv("LITENAS_MAX_MODEL_GB", "lots")
    assert run_cli(["export", str(good), "--format", "pt", "--out", str(tmp_path / "o.pt")]) == 2
    assert "LITENAS_MAX_MODEL_GB" in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()


def image_folder(root: Path, classes: int, per_class: int) -> Path:
    """A tiny ``train/<class>/``, ``test/<class>/`` folder of 32x32 images."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def test_a_one_class_dataset_is_refused(tmp_path, table, capsys) -> None:
    data = image_folder(tmp_path / "one", classes=1, per_class=3)
    fill = {"table": str(table), "tmp": str(tmp_path)}
    argv = SEARCH.format(**fill).replace("--data none", f"--data {data}").replace("synflow", "naswot").split()
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert "1 class" in err and str(data) in err
    good = tmp_path / "good.txt"
    good.write_text(GOOD_ARCH.replace("cls10", "cls1"))
    assert run_cli(["train", str(good), "--data", str(data), "--out", str(tmp_path / "train"), "--quiet"]) == 2
    assert "--data" in capsys.readouterr().err


def test_too_few_images_for_the_held_out_split_names_the_flag(tmp_path, table, capsys) -> None:
    data = image_folder(tmp_path / "two", classes=2, per_class=3)
    argv = (SEARCH.format(table=table, tmp=tmp_path).replace("--data none", f"--data {data}")
            .replace("synflow", "naswot") + " --test-per-class 5").split()
    assert run_cli(argv) == 2
    assert "--test-per-class" in capsys.readouterr().err


def test_constraints_that_admit_nothing_stop_the_search_early(tmp_path, table, capsys, monkeypatch) -> None:
    monkeypatch.setattr(runner, "MAX_FRUITLESS_START", 4)
    argv = (SEARCH.format(table=table, tmp=tmp_path).replace("--max-latency-ms 50", "--max-params 1000")
            .replace("--data none", "--data synthetic"))
    assert run_cli([*argv.split(), "--budget", "20"]) == 2
    err = capsys.readouterr().err
    assert "none of the first 4 candidates" in err and "relax --max-params 1000" in err
    assert "the lowest among them: params " in err


def test_a_latency_limit_under_the_fastest_network_is_refused_up_front(tmp_path, table, capsys) -> None:
    argv = (SEARCH.format(table=table, tmp=tmp_path).replace("--max-latency-ms 50", "--max-latency-ms 0.001")
            .replace("--data none", "--data synthetic"))
    assert run_cli(argv.split()) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--max-latency-ms 0.001: no network of `fbnet` can meet it; --latency-table" in err
    assert not (tmp_path / "run").exists()
    # the bound is a network of the space: every layer at its fastest candidate, as the table predicts it
    view = layerwise_view(get_space("fbnet", resolution=32, num_classes=10))
    model = LatencyModel.from_table(view, LatencyTable.load(table, check_env=False))
    quickest = [int(c.argmin()) for c in model.costs()]
    predicted = LatencyPredictor(LatencyTable.load(table, check_env=False)).predict(view.arch(quickest))
    assert f"predicts none under {predicted:.4g} ms" in err


def test_a_latency_limit_under_every_mobile_network_is_refused_up_front(tmp_path, capsys) -> None:
    """``mobile`` is conditional (its layers' shapes depend on earlier choices); a dynamic programme
    over its stages still finds the least prediction of the shipped table, under which nothing fits."""
    table = latency_tables.load("mobile_32_cpu", check_env=False)
    space = get_space("mobile", resolution=32, num_classes=10)
    predictor = LatencyPredictor(table)
    floor = space.min_cost(predictor.op_cost_floor, core_only=True) + table.calibration.constant
    sampled = [predictor.predict(space.sample(seed)) for seed in range(200)]
    assert 0 < floor <= min(sampled)
    argv = (f"search --space mobile --resolution 32 --strategy random --latency-table mobile_32_cpu --evaluator proxy "
            f"--proxy synflow --data none --budget 2 --max-latency-ms {floor * 0.99:.4f} --quiet --no-zoo "
            f"--out {tmp_path}/run")
    assert run_cli(argv.split()) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no network of `mobile` can meet it" in err and f"predicts none under {floor:.4g} ms" in err
    assert not (tmp_path / "run").exists()


def test_a_table_that_misses_the_space_s_ops_is_refused_before_the_search_starts(tmp_path, table, capsys) -> None:
    # data-free: the networks get the table's class count, 1000 here, whose heads the table lacks
    assert run_cli(SEARCH.format(table=table, tmp=tmp_path).split()) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--latency-table {table}" in err and "lacks 1 of the 110 op configurations" in err
    assert "hc|352x1x1|" in err and "--measure-missing" in err and "nas latency build --space fbnet" in err
    assert not (tmp_path / "run").exists()


def store(tmp_path: Path, identity: dict) -> RunStore:
    space = get_space("fbnet", resolution=32, num_classes=10)
    return RunStore(f"sqlite:///{tmp_path / 'study.db'}", "s", space, ["maximize"], {"config": identity},
                    resolved={"resolution": 32})


def test_a_different_search_is_refused_naming_each_setting(tmp_path) -> None:
    store(tmp_path, {"seed": 0, "resolution": 64})
    first = store(tmp_path, {"seed": 0, "resolution": None})  # an empty run takes the settings of the one filling it
    point = first.space.sample_point(np.random.default_rng(0))
    first.start(point, first.space.decode(point))
    store(tmp_path, {"seed": 0, "resolution": 32})  # a stored None stood for the resolved value
    with pytest.raises(ValueError, match=r"settings differ: resolution \(store: 32, now: 64\); seed \(store: 0, now: 5\)"):
        store(tmp_path, {"seed": 5, "resolution": 64})


def test_a_tampered_architecture_in_the_store_names_the_store_and_trial(tmp_path) -> None:
    s = store(tmp_path, {"seed": 0})
    point = s.space.sample_point(np.random.default_rng(0))
    number = s.start(point, s.space.decode(point))
    s.finish(number, {"synflow": 1.0}, [1.0], None)
    huge = Arch.from_str(GOOD_ARCH.replace("c24", "c1000000000")).to_str()
    with sqlite3.connect(tmp_path / "study.db") as db:
        db.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'arch'", (json.dumps(huge),))
    with pytest.raises(ValueError, match=rf"study store .*study.db: trial {number}: the stored architecture is invalid"):
        store(tmp_path, {"seed": 0}).history()


def test_a_deeply_nested_attribute_in_the_store_names_the_store(tmp_path) -> None:
    s = store(tmp_path, {"seed": 0})
    point = s.space.sample_point(np.random.default_rng(0))
    s.finish(s.start(point, s.space.decode(point)), {"synflow": 1.0}, [1.0], None)
    with sqlite3.connect(tmp_path / "study.db") as db:
        db.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'outcome'",
                   ("[" * 100_000 + "]" * 100_000,))
    with pytest.raises(StoreError, match=r"study store .*study.db: cannot be read or written, the file may be damaged"):
        store(tmp_path, {"seed": 0}).history()


@pytest.mark.parametrize("content,why", [
    (None, "no such file (expected an accuracy predictor)"), ("dir", "a directory, not an accuracy predictor"),
    (b"", "not an accuracy predictor: empty"), (b"[" * 100_000, "not an accuracy predictor: JSON nested too deeply"),
    (b'"text"', "not an accuracy predictor: a string where a JSON object belongs"),
    (b'{"a": ', "not an accuracy predictor: not valid JSON"), (b'{"\xff": 1}', "not an accuracy predictor: not UTF-8")])
def test_a_json_file_is_read_or_refused_in_one_line_naming_it(tmp_path, content, why) -> None:
    path = tmp_path / "p.json"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(JSONFileError) as info:
        read_json_file(path, "an accuracy predictor")
    assert str(info.value).startswith(f"{path}: {why}") and "\n" not in str(info.value)


def test_a_damaged_training_checkpoint_is_refused_naming_it(tmp_path, capsys) -> None:
    good = tmp_path / "good.txt"
    good.write_text(GOOD_ARCH)
    argv = ["train", str(good), "--data", "synthetic", "--out", str(tmp_path / "run"), "--epochs", "1",
            "--batch-size", "32", "--threads", "1", "--quiet"]
    assert run_cli(argv) == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    blob = torch.load(ckpt, weights_only=True)
    torch.save({**blob, "meta": "[" * 100_000 + "]" * 100_000}, ckpt)
    assert run_cli(argv) == 2  # the same command resumes: it reads the checkpoint
    assert (f"{ckpt} (its metadata): not a litenas training checkpoint: JSON nested too deeply; delete it to start "
            "the run over") in capsys.readouterr().err


def test_a_run_without_resolution_resumes_one_given_the_table_s(tmp_path, table) -> None:
    argv = SEARCH.format(table=table, tmp=tmp_path).replace("--data none", "--data synthetic").split()
    assert run_cli([*argv, "--budget", "1", "--resolution", "32"]) == 0
    assert run_cli([*argv, "--budget", "2"]) == 0


def test_a_read_only_run_directory_is_named(tmp_path, table, capsys, monkeypatch) -> None:
    # (the tests may run as root, whom permissions do not stop: the refusals are simulated)
    monkeypatch.setattr(runner.os, "access", lambda path, mode: False)
    assert run_cli(SEARCH.format(table=table, tmp=tmp_path).replace("--data none", "--data synthetic").split()) == 2
    assert f"out: {tmp_path / 'run'} is not writable" in capsys.readouterr().err

    def denied(*, dir: str, **_kwargs) -> tuple[int, str]:  # noqa: A002 - tempfile's name
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".out.pt.x.tmp"))

    good = tmp_path / "good.txt"
    good.write_text(GOOD_ARCH)
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert run_cli(["export", str(good), "--format", "pt", "--out", str(tmp_path / "ro" / "out.pt")]) == 2
    assert f"{tmp_path / 'ro'}: cannot write out.pt here (Permission denied)" in capsys.readouterr().err


def test_a_calibration_that_predicts_zero_or_less_fails_the_candidate_naming_the_table(table) -> None:
    from latency_tables.predict import LatencyPredictor
    from latency_tables.table import Calibration, LatencyTable

    t = LatencyTable.load(table, check_env=False)
    t.calibration = Calibration("offset", {"sum": 1.0, "const": -100.0}, 0.0)
    space = get_space("fbnet", resolution=32, num_classes=10)
    arch = space.decode(space.sample_point(np.random.default_rng(0)))
    with pytest.raises(ValueError, match=rf"{table.name}: its calibration \(offset\) predicts .* \(<= 0\)"):
        LatencyPredictor(t).predict(arch)
