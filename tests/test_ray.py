"""The Ray executor against a real Ray instance that this module starts (on 127.0.0.1) and stops:
a search completes on it, a worker killed mid-search loses nothing, a hung candidate times out.

Ray turns ``--node-ip-address=127.0.0.1`` into the machine's routable address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the switch behind Ray's single-machine mode); with it every
Ray process listens on the loopback interface only. The instance runs in its own process group,
which the finalizer kills (not ``ray stop``, which would end every Ray instance on the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_search_runner import config, fake_table

from evaluators.base import Evaluator, Result
from nas.arch import Arch
from nas.cli import main
from nas.search.execution import make_executor
from nas.search.executors import InProcessExecutor
from nas.search.runner import Search

_START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists (atomic across processes); whether it was created."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


class Sabotaged(Evaluator):
    """``inner``, except that the ``nth`` evaluation started (in any process) misbehaves once:
    ``"crash"`` ends its worker process, ``"hang"`` never returns. Every attempt leaves a mark
    in ``marks``; the sabotaged candidate's hash is written to ``marks/sabotaged``."""

    def __init__(self, inner: Evaluator, marks: Path, how: str, nth: int = 3):
        self.inner, self.marks, self.how, self.nth = inner, marks, how, nth
        self.name, self.metrics = inner.name, inner.metrics

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def evaluate(self, arch: Arch) -> Result:
        h = arch.hash()
        (self.marks / f"attempt-{h}-{os.getpid()}-{time.monotonic_ns()}").touch()
        if len(list(self.marks.glob("attempt-*"))) >= self.nth and _first(self.marks / "sabotaged", h):
            if self.how == "crash":
                os._exit(1)
            time.sleep(600)
        return self.inner.evaluate(arch)


class CountsLoads(Evaluator):
    """``inner``; every copy of it that arrives in a process (unpickled) leaves a mark
    ``load-<pid>-<ns>`` in ``marks``."""

    def __init__(self, inner: Evaluator, marks: Path):
        self.inner, self.marks = inner, marks
        self.name, self.metrics = inner.name, inner.metrics

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        (self.marks / f"load-{os.getpid()}-{time.monotonic_ns()}").touch()

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def check(self, arch: Arch) -> None:
        self.inner.check(arch)

    def evaluate(self, arch: Arch) -> Result:
        return self.inner.evaluate(arch)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return fake_table(tmp_path_factory.mktemp("table") / "fbnet32.json")


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A one-node Ray instance on 127.0.0.1 (2 CPUs); its address. Nothing outlives the module."""
    import ray
    import ray._private.ray_constants as ray_constants

    temp = Path(tempfile.mkdtemp(prefix="lnray-"))  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    log = temp / "ray-start.log"
    # Loopback only, so no token authentication (Ray turns it on when ~/.ray/auth_token exists).
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")
    cmd = [shutil.which("ray") or "ray", "start", "--head", "--block", f"--port={port}",
           "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={temp}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    patch = pytest.MonkeyPatch()
    registered = False
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`ray start` did not come up:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # the driver's side: 127.0.0.1 stays itself
        patch.setenv("RAY_AUTH_MODE", "disabled")
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module
        registered = True
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if registered:
            ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        patch.undo()
        _kill_group(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc``: the instance, its daemons and workers (what
    ``ray stop --force`` does, to this instance only; SIGTERM would drain for up to 30 s)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _run(search: Search, executor: Any) -> list:
    state = search.run(executor, progress=False)
    return [r for r in state.records if r.evaluated]


def test_cli_search_on_a_running_cluster(tmp_path, table, ray_address, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RAY_ADDRESS", ray_address)
    out = tmp_path / "cli"
    argv = ["search", "--space", "fbnet", "--strategy", "evolution", "--population", "4", "--sample-size", "2",
            "--latency-table", str(table), "--max-latency-ms", "50", "--evaluator", "proxy", "--proxy", "synflow",
            "--budget", "4", "--out", str(out), "--executor", "ray", "--ray-address", "auto", "--workers", "2",
            "--quiet", "--no-zoo", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["evaluated"] == 4 and summary["best"] is not None
    records = json.loads((out / "candidates.json").read_text())
    assert sum(r["state"] == "complete" for r in records) == 4


def test_a_killed_worker_loses_nothing(tmp_path, table, ray_address) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    cfg = config(tmp_path, table, executor="ray", ray_address=ray_address, workers=2, budget=5, max_retries=1)
    search = Search.from_config(cfg)
    executor = make_executor(cfg.executor, Sabotaged(search.score.inner, marks, "crash"))
    evaluated = _run(search, executor)
    crashed = (marks / "sabotaged").read_text()
    assert executor.retries == 1
    assert len(evaluated) == 5 and len({r.arch.hash() for r in evaluated}) == 5
    assert all(r.state == "complete" for r in evaluated)
    assert crashed in {r.arch.hash() for r in evaluated}
    assert all(search.score.lookup(r.arch) is not None for r in evaluated)  # cached by the driver
    assert len(list(marks.glob(f"attempt-{crashed}-*"))) == 2  # the first attempt died, the retry finished


def test_a_supernet_search_loads_the_weights_once_per_worker(tmp_path, table, ray_address, capsys) -> None:
    """``--evaluator supernet`` on Ray: the supernet travels once to each worker process (not
    with every task), and the scores are those of the same search run in-process."""
    sn_dir = tmp_path / "supernet"
    assert main(["supernet", "train", "--space", "fbnet", "--resolution", "32", "--data", "synthetic",
                 "--train-per-class", "8", "--epochs", "1", "--batch-size", "40", "--randoms", "1",
                 "--threads", "1", "--out", str(sn_dir), "--quiet"]) == 0
    capsys.readouterr()
    marks = tmp_path / "marks"
    marks.mkdir()
    settings = dict(evaluator="supernet", supernet=str(sn_dir), budget=6, population=4, sample_size=2)
    local = _run(Search.from_config(config(tmp_path / "local", table, **settings)), None)
    cfg = config(tmp_path / "ray", table, executor="ray", ray_address=ray_address, workers=2, **settings)
    search = Search.from_config(cfg)
    on_ray = _run(search, make_executor(cfg.executor, CountsLoads(search.score.inner, marks)))
    assert len(on_ray) == 6 and all(r.state == "complete" for r in on_ray)
    scored_locally = {r.arch.hash(): r.metrics["top1"] for r in local}
    both = [r for r in on_ray if r.arch.hash() in scored_locally]  # the first population at least
    assert len(both) >= 4 and all(r.metrics["top1"] == scored_locally[r.arch.hash()] for r in both)
    pids = [m.name.split("-")[1] for m in marks.glob("load-*")]
    assert 1 <= len(pids) < 6 and len(set(pids)) == len(pids)  # one load per worker process


def test_a_hung_candidate_times_out(tmp_path, table, ray_address) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    cfg = config(tmp_path, table, executor="ray", ray_address=ray_address, workers=2, budget=5, eval_timeout_s=12.0)
    search = Search.from_config(cfg)
    start = time.monotonic()
    evaluated = _run(search, make_executor(cfg.executor, Sabotaged(search.score.inner, marks, "hang")))
    hung = (marks / "sabotaged").read_text()
    assert time.monotonic() - start < 60
    assert len(evaluated) == 5
    failed = [r for r in evaluated if r.state == "failed"]
    assert [r.arch.hash() for r in failed] == [hung]
    assert "timed out after 12 s" in (failed[0].reason or "")
    assert search.score.lookup(failed[0].arch) is None  # a timeout depends on the machine: not cached


def test_bad_addresses_are_clear_errors(tmp_path, table) -> None:
    from nas.search.ray_executor import RayExecutor

    search = Search.from_config(config(tmp_path, table, budget=1))
    with pytest.raises(ValueError, match="HOST:PORT"):
        RayExecutor(search.score, address="no-port-here")
    with pytest.raises(ValueError, match="no Ray cluster reachable"):
        RayExecutor(search.score, address=f"127.0.0.1:{_free_port()}")


class _Counting(InProcessExecutor):
    submitted = 0

    def submit(self, ticket: int, arch: Arch) -> None:
        self.submitted += 1
        super().submit(ticket, arch)


def test_cache_hits_are_never_submitted(tmp_path, table) -> None:
    """The driver owns the cache: a candidate it holds a result for is not sent to the executor."""
    first = Search.from_config(config(tmp_path / "a", table, budget=2))
    done = _run(first, None)
    again = Search.from_config(config(tmp_path / "b", table, budget=2))
    shutil.copytree(tmp_path / "a" / "run" / "cache", tmp_path / "b" / "run" / "cache", dirs_exist_ok=True)
    executor = _Counting(again.score.inner)
    assert [r.metrics for r in _run(again, executor)] == [r.metrics for r in done]
    assert executor.submitted == 0
