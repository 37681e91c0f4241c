"""The soak script's smoke preset: a real ``nas search`` subprocess SIGKILLed twice at random
moments and resumed ends identical to its uninterrupted run, and the comparison it relies on
notices a run that differs."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak_search", ROOT / "scripts" / "soak_search.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_search_killed_and_resumed_ends_as_the_uninterrupted_one(tmp_path) -> None:
    soak = load_script()
    rc = soak.main(["--preset", "smoke", "--work", str(tmp_path), "--kill-min-s", "3", "--kill-max-s", "8"])
    state = json.loads((tmp_path / "soak.json").read_text())
    entry = state["predictor-evolution"]
    assert rc == 0 and entry["identical"], entry["problems"]
    assert entry["starts"] == entry["kills"] + 1 and len(entry["kill_delays_s"]) == entry["kills"]
    assert "identical" in (tmp_path / "soak_search.md").read_text()

    # The check has teeth: a changed metric, a lost candidate or a changed report is reported.
    reference = soak.outputs(tmp_path / "predictor-evolution-reference")
    budget = entry["budget"]
    assert soak.compare(reference, copy.deepcopy(reference), budget) == []
    changed = copy.deepcopy(reference)
    scored = next(c for c in changed["candidates"] if c["state"] == "complete")
    scored["metrics"]["top1"] += 0.01
    assert any("candidates.json" in p for p in soak.compare(reference, changed, budget))
    lost = copy.deepcopy(reference)
    lost["candidates"].remove(next(c for c in lost["candidates"] if c["state"] == "complete"))
    assert any("distinct (budget" in p for p in soak.compare(reference, lost, budget))
    edited = copy.deepcopy(reference)
    edited["files"]["report.md"] += "\n"
    assert soak.compare(reference, edited, budget) == ["report.md differs"]
