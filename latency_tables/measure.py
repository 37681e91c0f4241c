"""The timing harness: time one op configuration (or a whole network) in isolation.

Method (shared by op tables and whole-network measurements, so the two are comparable):

- the module is put in ``eval`` mode on the device, dtype and memory format of the settings,
  optionally compiled by the backend (eager PyTorch by default; TorchScript trace+freeze, or
  ONNX Runtime when it is installed), and run under ``torch.inference_mode`` with a fixed
  intra-op thread count (``torch.set_num_threads``) and the garbage collector paused;
- every call reads the same input tensor, and with ``cache="cold"`` (the default) every timed
  call starts from the cache state the op finds inside a network: first an 8 MiB scratch buffer
  is written (evicting the op's weights and everything else from the private caches), then the
  input is rewritten in place (so it is as warm as a map the previous op has just produced).
  Timed back to back instead (``cache="warm"``), an op keeps its weights in L1/L2 and runs
  faster than within a network: on the 2-core EPYC this was developed on, random FBNet networks
  at 64-96 px took 1.20-1.33x the sum of their warm ops but 0.93-1.02x the sum of their cold
  ops. The same preparation precedes every timed call of a whole network, so tables and
  networks are measured alike;
- after ``warmup`` calls (allocator, oneDNN primitive caches, CPU frequency), one sample is the
  wall time of one call (``time.perf_counter``; on CUDA the call is bracketed by
  ``torch.cuda.synchronize`` so the sample holds the kernels, not just their launch). On a
  shared CPU, ``clock="cpu"`` (one thread only) samples the calling thread's CPU time instead:
  time slices lost to other processes inflate long calls (whole networks) far more than short
  ones (single ops), which no overhead term can undo, while CPU time is immune to them;
- items measured together are *interleaved*: rounds of a few samples of each item, so a burst of
  noise from the rest of the machine spreads over every item instead of spoiling one;
- an item stops once it has ``min_repeats`` samples and the 95% confidence interval of its
  median (from order statistics) is within ``rel_ci`` of the median, or it hits ``max_repeats``
  or ``max_seconds``. The result is the median with the 10th and 90th percentiles.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from latency_tables.device import device_name
from latency_tables.table import IDENTITY_FIELDS, Timing
from nas.arch import Arch
from nas.builder import build_model
from nas.checks import is_int
from nas.onnx_graph import onnx_bytes
from nas.runtime import fixed_threads
from search_spaces.registry import OpConfig

BACKENDS = ("eager", "torchscript", "onnxruntime")
CLOCKS = ("wall", "cpu")
CACHES = ("cold", "warm")
# Bytes written between timed calls in ``cache="cold"`` mode: several times a CPU core's L2 (a
# GPU's L2 is up to 50 MiB, so CUDA devices write more).
COLD_FLUSH_BYTES = {"cpu": 8 << 20, "cuda": 256 << 20}
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

__all__ = [
    "BACKENDS",
    "CLOCKS",
    "CACHES",
    "DTYPES",
    "Settings",
    "summarise",
    "measure_modules",
    "measure_module",
    "measure_ops",
    "measure_archs",
    "control_arch",
    "combine_passes",
    "op_input_shape",
    "device_name",
]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How to measure. The first eight fields define *what* a table holds (they are recorded in its
    metadata and must agree between a table and the networks it predicts); the rest only steer
    how long the harness samples.

    Attributes:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        threads: intra-op CPU threads (``torch.set_num_threads``).
        batch_size: images per call.
        dtype: ``float32``, ``float16`` or ``bfloat16`` (weights and input).
        backend: ``eager``, ``torchscript`` or ``onnxruntime``.
        channels_last: NHWC memory format for input and weights.
        clock: ``wall`` (latency as a user sees it) or ``cpu`` (CPU time of the calling thread;
            CPU device and one thread only, for measuring on a machine shared with other work).
        cache: ``cold`` (evict caches, rewrite the input, then time: the state within a
            network) or ``warm`` (calls back to back).
        warmup: untimed calls before sampling.
        min_repeats: samples every item gets at least.
        max_repeats: samples after which an item stops regardless.
        max_seconds: sampling time after which an item stops (once it has ``min_repeats``).
        rel_ci: stop once the 95% confidence interval of the median is within +-``rel_ci`` of it.
        per_round: samples per item per interleaving round.
    """

    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    dtype: str = "float32"
    backend: str = "eager"
    channels_last: bool = False
    clock: str = "wall"
    cache: str = "cold"
    warmup: int = 10
    min_repeats: int = 40
    max_repeats: int = 400
    max_seconds: float = 2.0
    rel_ci: float = 0.01
    per_round: int = 5

    def __post_init__(self) -> None:
        if self.device != "cpu" and not (self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("threads", "batch_size", "min_repeats", "max_repeats", "per_round"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if self.max_repeats < self.min_repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) must be >= min_repeats ({self.min_repeats})")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds!r}")
        if not self.rel_ci >= 0:
            raise ValueError(f"rel_ci must be >= 0, got {self.rel_ci!r}")
        if self.cache not in CACHES:
            raise ValueError(f"cache must be one of {', '.join(CACHES)}, got {self.cache!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.clock == "cpu" and (self.device != "cpu" or self.threads != 1):
            raise ValueError("clock 'cpu' (thread CPU time) needs device 'cpu' and threads 1")
        if self.backend == "onnxruntime" and self.dtype != "float32":
            raise ValueError("the onnxruntime backend measures float32 only")

    def identity(self) -> dict[str, Any]:
        """The fields that define what a measurement means (recorded in table metadata)."""
        d = asdict(self)
        return {k: d[k] for k in IDENTITY_FIELDS}

    def harness(self) -> dict[str, Any]:
        """The fields that only steer sampling."""
        return {k: v for k, v in asdict(self).items() if k not in IDENTITY_FIELDS}

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def summarise(samples_s: Sequence[float]) -> Timing:
    """Median and 10th/90th percentiles (ms) of per-call times given in seconds."""
    if not samples_s:
        raise ValueError("no samples to summarise")
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    p10, med, p90 = np.percentile(ms, [10, 50, 90])
    return Timing(float(med), float(p10), float(p90), int(ms.size))


def median_ci_halfwidth(samples: Sequence[float]) -> float:
    """Relative half-width of the distribution-free 95% confidence interval of the median.

    With ``n`` sorted samples, the interval runs between the order statistics of rank
    ``n/2 -+ 1.96 sqrt(n)/2`` (normal approximation to the binomial).
    """
    n = len(samples)
    if n < 8:
        return math.inf
    s = sorted(samples)
    half = 0.98 * math.sqrt(n)
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half))
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return (s[hi] - s[lo]) / (2 * med) if med > 0 else math.inf


# ---------------------------------------------------------------------------------------------
# Preparing a callable per backend


def _input(shape: Sequence[int], settings: Settings) -> torch.Tensor:
    x = torch.randn(*shape, dtype=DTYPES[settings.dtype], device=settings.torch_device)
    if settings.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _prepare(module: nn.Module, shape: Sequence[int], settings: Settings) -> Callable[[], float]:
    """A zero-argument step that runs one inference and returns its time in seconds (in
    ``cache="cold"`` mode after evicting the caches and rewriting the input, untimed)."""
    module = module.eval().to(device=settings.torch_device, dtype=DTYPES[settings.dtype])
    if settings.channels_last:
        module = module.to(memory_format=torch.channels_last)
    x = _input(shape, settings)
    fn, touch_input = _backend_fn(module, x, settings)
    prime: Callable[[], Any] | None = None
    if settings.cache == "cold":
        dev = settings.torch_device
        scratch = torch.zeros(COLD_FLUSH_BYTES[dev.type] // 4, device=dev)

        def prime() -> None:
            scratch.add_(1.0)
            touch_input()
    perf = time.thread_time if settings.clock == "cpu" else time.perf_counter
    if settings.torch_device.type == "cuda":
        sync = torch.cuda.synchronize

        def step() -> float:
            if prime is not None:
                prime()
            sync()
            t0 = perf()
            fn()
            sync()
            return perf() - t0
    else:
        def step() -> float:
            if prime is not None:
                prime()
            t0 = perf()
            fn()
            return perf() - t0
    return step


def _backend_fn(module: nn.Module, x: torch.Tensor, settings: Settings
                ) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(run once, rewrite the input in place)`` for the settings' backend."""
    if settings.backend == "eager":
        return (lambda: module(x)), (lambda: x.mul_(1.0))
    if settings.backend == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still works
            scripted = torch.jit.freeze(torch.jit.trace(module, (x,)))
        return (lambda: scripted(x)), (lambda: x.mul_(1.0))
    return _onnxruntime_fn(module, x, settings)


def _onnxruntime_fn(module: nn.Module, x: torch.Tensor, settings: Settings
                    ) -> tuple[Callable[[], Any], Callable[[], Any]]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError("backend 'onnxruntime' needs the onnxruntime package (pip install onnxruntime onnx)") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = settings.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cuda = settings.torch_device.type == "cuda"
    providers = ["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    session = ort.InferenceSession(onnx_bytes(module, x), opts, providers=providers)  # what `nas export` writes
    arr = x.detach().cpu().numpy()

    def touch() -> None:
        np.multiply(arr, 1.0, out=arr)

    if not cuda:
        feed = {"input": arr}
        return (lambda: session.run(None, feed)), touch
    binding = session.io_binding()
    binding.bind_cpu_input("input", arr)
    binding.bind_output(session.get_outputs()[0].name, "cuda")
    return (lambda: session.run_with_iobinding(binding)), touch


@contextlib.contextmanager
def _quiet_process(settings: Settings) -> Iterator[None]:
    """Fixed thread count, inference mode and no garbage collection for the duration."""
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        with fixed_threads(settings.threads), torch.inference_mode():
            yield
    finally:
        if gc_was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# Measuring


def _enough(samples: list[float], spent: float, settings: Settings) -> bool:
    n = len(samples)
    if n < settings.min_repeats:
        return False
    if n >= settings.max_repeats or spent >= settings.max_seconds:
        return True
    return median_ci_halfwidth(samples) <= settings.rel_ci


def measure_modules(
    items: Sequence[tuple[nn.Module, Sequence[int]]], settings: Settings
) -> list[Timing]:
    """Time several modules, interleaved; ``items`` are ``(module, input shape)`` pairs.

    The input shape includes the batch dimension. Returns one :class:`Timing` per item, in order.
    """
    if not items:
        return []
    with _quiet_process(settings):
        steps = [_prepare(module, shape, settings) for module, shape in items]
        for step in steps:
            for _ in range(settings.warmup):
                step()
        samples: list[list[float]] = [[] for _ in steps]
        spent = [0.0] * len(steps)
        active = list(range(len(steps)))
        while active:
            for i in active:
                step, got = steps[i], samples[i]
                t0 = time.perf_counter()
                for _ in range(min(settings.per_round, settings.max_repeats - len(got))):
                    got.append(step())
                spent[i] += time.perf_counter() - t0
            active = [i for i in active if not _enough(samples[i], spent[i], settings)]
    return [summarise(s) for s in samples]


def measure_module(module: nn.Module, shape: Sequence[int], settings: Settings) -> Timing:
    """Time one module on an input of ``shape`` (batch dimension included)."""
    return measure_modules([(module, shape)], settings)[0]


def op_input_shape(config: OpConfig, batch_size: int) -> tuple[int, int, int, int]:
    """The NCHW input shape an op configuration sees in its network."""
    return (batch_size, config.in_chs, config.in_size, config.in_size)


def measure_ops(configs: Sequence[OpConfig], settings: Settings, *, control: OpConfig | None = None,
                anchor_ms: float | None = None) -> list[Timing]:
    """Time op configurations (each built alone), interleaved; one :class:`Timing` each.

    With a ``control`` op and its ``anchor_ms`` (its median at the speed the figures should be
    in), the control is timed interleaved with the group and every figure is scaled by
    ``anchor_ms`` over the control's median in the group: the ops read as at the anchor's speed,
    whatever the machine ran at while they were timed (the op-level form of
    :func:`measure_archs`' drift control; :func:`control_op` picks the op)."""
    ops = [*configs, control] if control is not None else list(configs)
    got = measure_modules([(c.build(), op_input_shape(c, settings.batch_size)) for c in ops], settings)
    if control is None:
        return got
    if anchor_ms is None or not anchor_ms > 0:
        raise ValueError(f"a control op needs its anchor time > 0 ms, got {anchor_ms!r}")
    factor = anchor_ms / got.pop().median_ms
    return [_scaled(t, factor) for t in got]


def control_op(configs: Sequence[OpConfig]) -> OpConfig:
    """The drift control of a table's ops (:func:`measure_ops`): among the ops with weights, the
    one of median input volume (channels x map area), a mid-range convolution that drifts with
    the machine as the others do. (Not a parameter-free op: a skip or a pool takes microseconds
    of call overhead, which does not move with the machine's compute speed.) The same for the
    same configurations, whatever their order."""
    def has_weights(c: OpConfig) -> bool:
        return any(True for _ in c.build().parameters())

    weighted = [c for c in configs if has_weights(c)] or list(configs)
    ranked = sorted(weighted, key=lambda c: (c.in_chs * c.in_size * c.in_size, c.key()))
    return ranked[len(ranked) // 2]


def control_arch(archs: Sequence[Arch]) -> Arch:
    """The drift control of a set of networks (:func:`measure_archs`): the one of median
    activation volume (the sum over its ops of input channels x map area), a mid-range network
    that drifts with the machine as the others do."""
    def volume(arch: Arch) -> int:
        return sum(c.in_chs * c.in_size * c.in_size for c in arch.op_configs())

    ranked = sorted(archs, key=lambda a: (volume(a), a.hash()))
    return ranked[len(ranked) // 2]


def measure_archs(archs: Sequence[Arch], settings: Settings, *, chunk: int = 4, passes: int = 3,
                  progress: bool = True, desc: str = "networks", seed: int = 0, control: bool = True,
                  control_net: Arch | None = None, anchor_ms: float | None = None,
                  control_ms: list[float] | None = None) -> list[Timing]:
    """Time whole networks, ``chunk`` at a time interleaved, in ``passes`` passes over the list.

    A machine's noise comes in bursts of seconds to minutes (another process, frequency
    changes); measured once, every network timed during a burst reads slow together. So each
    pass times every network (the full sampling of ``settings``), each in a fresh random order
    (seeded, so runs are reproducible), and a network's figures are the medians over passes of
    its per-pass median/p10/p90: one disturbed pass of three moves nothing. ``seed`` picks the
    orders of the passes after the first.

    A shared VM also drifts for minutes at a time: on the 2-core AMD EPYC VM the same networks
    measured twice ten minutes apart read 15-25% faster the second time. With ``control`` (the
    default) every chunk also times a control network (:func:`control_arch`), interleaved with
    the chunk's, and each network's figures are scaled by the control's median over all chunks
    divided by its time in that chunk: the networks are reported at the machine's typical speed
    over the run, whatever it ran at while their chunk was timed. ``control_net`` replaces the
    control and ``anchor_ms`` its median as the yardstick: with a table's recorded reference
    (:attr:`~latency_tables.table.Calibration.reference`) the networks come out in the units of
    the table's calibration, at the speed the machine had then. ``control_ms`` (a list) receives
    the control's time in every chunk (its spread is the drift the control took out).
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    per_pass: list[dict[int, tuple[Timing, float]]] = [{} for _ in range(passes)]
    rng = np.random.default_rng(seed)
    reference = (control_net or control_arch(archs)) if control and archs else None
    reference_item = None if reference is None else (
        build_model(reference), (settings.batch_size, reference.in_chans, reference.resolution, reference.resolution))
    refs: list[float] = []
    with tqdm(total=len(archs) * passes, desc=desc, unit="net", disable=None if progress else True) as bar:
        for p in range(passes):
            order = np.arange(len(archs)) if p == 0 else rng.permutation(len(archs))
            for start in range(0, len(archs), chunk):
                idx = [int(i) for i in order[start:start + chunk]]
                items = [(build_model(archs[i]), (settings.batch_size, archs[i].in_chans, archs[i].resolution,
                                                  archs[i].resolution)) for i in idx]
                got = measure_modules(items if reference_item is None else [*items, reference_item], settings)
                ref = got.pop().median_ms if reference_item is not None else 1.0
                refs.append(ref)
                for i, t in zip(idx, got, strict=True):
                    per_pass[p][i] = (t, ref)
                bar.update(len(idx))
    anchor = 1.0 if reference_item is None else float(np.median(refs)) if anchor_ms is None else anchor_ms
    if control_ms is not None and reference_item is not None:
        control_ms.extend(refs)
    return [combine_passes([_scaled(t, anchor / ref) for t, ref in (per_pass[p][i] for p in range(passes))])
            for i in range(len(archs))]


def _scaled(t: Timing, factor: float) -> Timing:
    return Timing(t.median_ms * factor, t.p10_ms * factor, t.p90_ms * factor, t.n)


def combine_passes(got: Sequence[Timing]) -> Timing:
    """One :class:`Timing` from several passes' timings of one item: the median of each statistic
    over passes (robust to one disturbed pass), with ``n`` the samples of all passes."""
    if not got:
        raise ValueError("no timings to combine")
    return Timing(float(np.median([t.median_ms for t in got])), float(np.median([t.p10_ms for t in got])),
                  float(np.median([t.p90_ms for t in got])), sum(t.n for t in got))
