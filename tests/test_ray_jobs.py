"""The README's Ray job workflow, as documented: ``ray job submit --address http://HEAD:8265
--working-dir . -- nas search ... --executor ray --ray-address auto`` against a head started with
its dashboard (the jobs server), on 127.0.0.1.

The jobs CLI and the dashboard are in ``ray[default]`` (the ``cluster`` extra; CI installs it
with ``dev``); without it the job test is skipped, saying so. As in ``test_ray.py``, the head listens on the
loopback interface only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), without token authentication,
and runs in its own process group, which the fixture kills at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_ray import _free_port, _kill_group
from test_search_runner import fake_table

ROOT = Path(__file__).resolve().parents[1]
_START_TIMEOUT_S = 60.0
_JOB_TIMEOUT_S = 120.0


def _jobs_cli_missing() -> str | None:
    """Why the Ray jobs CLI cannot run here (``None`` when it can)."""
    try:
        import ray.dashboard.modules.job.cli  # noqa: F401
        import ray.dashboard.modules.job.sdk  # noqa: F401
    except ImportError as exc:
        return f"the Ray jobs CLI needs ray[default] (pip install -e \".[cluster]\"): {exc}"
    return None


def _loopback_env() -> dict[str, str]:
    """This environment, without a Ray address, on the loopback interface and without auth."""
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"}}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def dashboard_address() -> Iterator[str]:
    """A one-node Ray head on 127.0.0.1 with its dashboard (2 CPUs); the jobs server's URL."""
    temp = Path(tempfile.mkdtemp(prefix="lnjob-"))  # short: Ray's socket paths must fit in 107 bytes
    port, dashboard_port = _free_port(), _free_port()
    log = temp / "ray-start.log"
    cmd = [shutil.which("ray") or "ray", "start", "--head", "--block", f"--port={port}",
           "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dashboard_port}", "--disable-usage-stats", f"--temp-dir={temp}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_loopback_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`ray start` with the dashboard did not come up:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        _kill_group(proc)
        shutil.rmtree(temp, ignore_errors=True)


def test_the_cluster_extra_brings_the_jobs_cli() -> None:
    """``pip install -e ".[cluster]"`` (the README's Ray section) and ``.[dev]`` (CI) both install
    ``ray[default]``, compatible with the core ``ray`` requirement."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    core = re.search(r'^dependencies = \[.*?"ray(>=[^"]+)"', text, flags=re.S | re.M).group(1)
    for extra in ("cluster", "dev"):
        listed = re.search(rf"^{extra} = \[(.*?)\]$", text, flags=re.S | re.M).group(1)
        assert f'"ray[default]{core}"' in listed, extra
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Running on a Ray cluster", 1)[1]
    assert 'pip install -e ".[cluster]"' in section.split("\n## ", 1)[0]


@pytest.mark.skipif(_jobs_cli_missing() is not None, reason=str(_jobs_cli_missing()))
def test_a_search_submitted_as_a_ray_job(tmp_path, dashboard_address) -> None:
    """The README's ``ray job submit`` command runs ``nas search`` on the head, its evaluations as
    Ray tasks of the same cluster, and writes the run directory given as an absolute ``--out``."""
    table = fake_table(tmp_path / "fbnet32.json")
    out = tmp_path / "job-run"
    search = ["nas", "search", "--space", "fbnet", "--strategy", "evolution", "--population", "4",
              "--sample-size", "2", "--latency-table", str(table), "--max-latency-ms", "50", "--evaluator", "proxy",
              "--proxy", "synflow", "--budget", "4", "--executor", "ray", "--ray-address", "auto", "--workers", "2",
              "--quiet", "--no-zoo", "--json", "--out", str(out)]
    cmd = [shutil.which("ray") or "ray", "job", "submit", "--address", dashboard_address, "--working-dir", ".",
           "--", *search]
    done = subprocess.run(cmd, cwd=ROOT, env=_loopback_env(), capture_output=True, text=True,
                          timeout=_JOB_TIMEOUT_S)
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs[-4000:]
    assert "succeeded" in logs, logs[-4000:]
    summary = json.loads(re.search(r"^\{.*?^\}", done.stdout, flags=re.S | re.M).group(0))  # the job's --json
    assert summary["evaluated"] == 4 and summary["best"] is not None
    records = json.loads((out / "candidates.json").read_text())
    assert sum(r["state"] == "complete" for r in records) == 4
