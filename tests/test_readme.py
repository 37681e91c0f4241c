"""The README's set-up and test commands are exactly what CI runs, and its main job parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from nas.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_ci_runs_the_readme_setup_and_test_commands() -> None:
    setup, main_job, tests = quick_start_commands()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert setup in ci
    assert tests in ci
    assert main_job.startswith("nas ")


def test_readme_main_job_is_a_valid_command() -> None:
    _, main_job, _ = quick_start_commands()
    args = build_parser().parse_args(shlex.split(main_job)[1:])
    assert args.command == "search"


def test_readme_main_job_uses_what_litenas_ships() -> None:
    """The table and predictor the main job names ship with litenas and fit its space."""
    import latency_tables
    from evaluators.predictor import Predictor, resolve_predictor
    from search_spaces.spaces import get_space

    _, main_job, _ = quick_start_commands()
    args = build_parser().parse_args(shlex.split(main_job)[1:])
    table = latency_tables.load(args.latency_table)
    assert (table.meta["space"], table.resolution) == (args.space, args.resolution)
    predictor = Predictor.load(resolve_predictor(args.predictor))
    predictor.check(get_space(args.space, resolution=args.resolution, num_classes=predictor.num_classes))


def test_ci_runs_the_readme_nni_commands() -> None:
    """The optional NNI extra is tested in CI exactly as the README tells users to install it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## NNI interoperability", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in block.strip().splitlines():
        assert command in ci
