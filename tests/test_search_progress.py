"""``nas search`` is never silent for long: after the candidate bar, scoring the zoo and writing the
report show bars, measuring ops missing from the latency table shows what it does, ``--quiet``
hides all of it, and ``--help`` states each flag's default once."""

from __future__ import annotations

import argparse
import json

from test_search_runner import config, fake_table

from nas.cli import build_parser, main
from nas.search.runner import Search


def _search_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["search"]


def test_help_states_each_default_once() -> None:
    for action in _search_parser()._actions:
        assert (action.help or "").lower().count("default") <= 1, action.option_strings
        assert "(default: None)" not in (action.help or ""), action.option_strings


def _argv(table, out, *extra: str) -> list[str]:
    return ["search", "--space", "fbnet", "--strategy", "random", "--latency-table", str(table), "--evaluator",
            "proxy", "--proxy", "synflow", "--data", "synthetic", "--max-latency-ms", "50", "--budget", "2", "--out",
            str(out), "--json",
            *extra]


def test_zoo_scoring_and_report_writing_show_bars_unless_quiet(tmp_path, capsys) -> None:
    table = fake_table(tmp_path / "fbnet32.json")
    assert main(_argv(table, tmp_path / "loud")) == 0
    err = capsys.readouterr().err
    assert "search fbnet" in err and "100%" in err
    assert "zoo" in err and "report" in err and "4/4" in err
    assert main(_argv(table, tmp_path / "quiet", "--quiet")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out)["evaluated"] == 2


def test_measuring_missing_ops_shows_progress(tmp_path, capsys) -> None:
    """The ops a table lacks are measured with a bar (:meth:`Evaluation.measure_missing`), and the
    candidate bar says when the screen measures some."""
    full = fake_table(tmp_path / "full.json")
    search = Search.from_config(config(tmp_path / "a", full, measure_missing=True, budget=1))
    archs = [search.space.sample(seed) for seed in range(2)]
    key = archs[0].op_configs()[0].key()  # the stem, which both share
    del search.evaluation.table.entries[key]
    assert search.evaluation.missing_ops(archs[0]) == [key]
    assert search.evaluation.measure_missing(archs, progress=True) == 1
    assert key in search.evaluation.table and search.evaluation.missing_ops(archs[0]) == []
    assert "measuring missing ops" in capsys.readouterr().err
    assert search.evaluation.measure_missing(archs, progress=True) == 0  # nothing left: no bar
    assert capsys.readouterr().err == ""

    table = fake_table(tmp_path / "lacking.json")
    search = Search.from_config(config(tmp_path / "b", table, measure_missing=True, budget=1))
    stem = search.space.sample(0).op_configs()[0].key()  # every candidate's stem
    del search.evaluation.table.entries[stem]
    search.run(progress=True)
    assert "measuring 1 ops missing from the latency table" in capsys.readouterr().err
    assert stem in search.evaluation.table
