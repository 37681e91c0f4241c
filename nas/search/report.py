"""The outputs of a search run, written atomically into its run directory.

- ``candidates.json``: every candidate (trial, hash, state, metrics, objective values, reason,
  compact architecture string).
- ``pareto.json``: the non-dominated candidates over (quality metric up, predicted latency down).
- ``fixed_points.json``: the zoo entries at the search's input size, scored by the same evaluators.
- ``top/rank01_<hash>.json`` ...: the top-k **new** candidates (not zoo entries) as ``Arch`` JSON,
  ready for ``nas export``.
- ``pareto.png``: quality vs predicted latency; candidates, the front, the top-k and every fixed
  point on the same axes.
- ``report.md``: the summary a person reads first. Its first lines say what ranked the
  candidates (:func:`ranking_basis`): the estimator, whether its figures are measured or
  predicted, the data, and where the latencies come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluators.base import Evaluator
from evaluators.datasets import Dataset
from evaluators.predictor import PredictedAccuracy
from evaluators.proxies import ZeroCostProxies
from evaluators.supernet import SupernetAccuracy
from evaluators.train import TrainConfig, TrainedAccuracy
from latency_tables.table import LatencyTable
from nas.arch import Arch
from nas.io import atomic_write_json, atomic_write_text
from nas.search.objectives import LATENCY_METRIC, Objective
from nas.search.pareto import pareto_front
from nas.search.store import Record
from search_spaces import zoo


@dataclass(frozen=True)
class FixedPoint:
    """A zoo entry scored by the search's evaluators."""

    name: str
    arch: Arch
    metrics: dict[str, float]
    reason: str | None
    notes: tuple[str, ...] = ()
    """What an evaluator said of its figure (``Result.info["note"]``: an in-sample prediction)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.arch.hash(), "metrics": self.metrics, "reason": self.reason,
                "notes": list(self.notes)}


def fixed_points_for(resolution: int, num_classes: int) -> list[tuple[str, Arch]]:
    """Zoo entries whose input size is ``resolution``, re-targeted to ``num_classes``."""
    out = []
    for name in zoo.names():
        arch = zoo.get(name)
        if arch.resolution == resolution:
            out.append((name, arch.replace(num_classes=num_classes)))
    return out


def score_fixed_points(points: Sequence[tuple[str, Arch]], evaluators: Sequence[Evaluator], *,
                       progress: bool = False) -> list[FixedPoint]:
    """Every fixed point through every evaluator (failures keep the metrics computed before; a fixed
    point an evaluator cannot take at all is reported with the evaluator's reason). ``progress``
    shows a bar over the fixed points."""
    out = []
    for name, arch in tqdm(points, desc="zoo", unit="net", disable=not progress, dynamic_ncols=True):
        metrics: dict[str, float] = {}
        reason = None
        notes: list[str] = []
        for ev in evaluators:
            try:
                r = ev.evaluate(arch)
            except ValueError as exc:  # an evaluator that cannot take it (outside a supernet's or predictor's space)
                reason = f"{ev.name}: {exc}"
                break
            metrics.update(r.metrics)
            if "note" in r.info:
                notes.append(f"{ev.name}: {r.info['note']}")
            if not r.ok:
                reason = r.reason
                break
        out.append(FixedPoint(name, arch, metrics, reason, tuple(notes)))
    return out


def ranking_basis(config: Mapping[str, Any], score: Evaluator, metric: str, table: LatencyTable) -> list[str]:
    """The report's first lines: the estimator that ranked the candidates by ``metric`` (``score``,
    the search's expensive evaluator) and whether its figures are measured or predicted, the data
    it ranked them on, and where the latencies come from. A ranking on synthetic images, by a
    proxy or by a predictor must not read as measured accuracy."""
    source = _data_source(str(config.get("data")))
    if isinstance(score, PredictedAccuracy):
        p = score.predictor
        tau = p.cv.get(p.model["name"])
        estimator = (f"`{metric}` **predicted**, not measured, by the accuracy predictor `{config.get('predictor')}` "
                     f"({p.model['name']} fitted on {p.n} networks of `{p.space}`@{p.resolution} trained stand-alone"
                     + (f"; cross-validated Kendall tau {tau:+.3f})" if tau is not None else ")"))
        data = (f"no images read by this search: the predicted figures stand for top-1 on the data the predictor's "
                f"networks were trained on ({_data_identity(p.data)})"
                + (f"; `--data {config.get('data')}` is not used by the predictor" if config.get("data") != "none"
                   else ""))
    elif isinstance(score, ZeroCostProxies):
        estimator = (f"`{metric}`, a zero-cost proxy **measured** on each untrained network: a score, not an "
                     "accuracy (only its order means something)")
        data = ("none (a data-free proxy)" if score.data is None else
                f"{source}: one minibatch of {score.batch_size} training images per candidate")
    elif isinstance(score, TrainedAccuracy):
        estimator = f"`{metric}` **measured** after training each candidate ({_budget(score.train_config)})"
        data = f"{source}: {_split(score.data)}"
    elif isinstance(score, SupernetAccuracy):
        estimator = (f"`{metric}` **measured** with the weights each candidate inherits from the supernet "
                     f"`{config.get('supernet')}`, after BatchNorm re-calibration (no training per candidate)")
        data = (f"{source}: BatchNorm re-calibrated on training images, ranked on {len(score.data.test)} images the "
                "supernet held out of its training")
    else:
        doc = next((m.doc for m in score.metrics if m.name == metric), "")
        estimator = f"`{metric}` from the evaluator `{score.name}`" + (f" ({doc})" if doc else "")
        held: Dataset | None = getattr(score, "data", None)
        data = source if not isinstance(held, Dataset) else f"{source}: {_split(held)}"
    meta = table.meta
    latency = (f"`{LATENCY_METRIC}` **predicted** from the latency table `{config.get('latency_table')}` (its op "
               f"timings measured on {meta.get('device_name')}, {meta.get('device')}, torch {meta.get('torch')})")
    return [f"- **estimator**: {estimator}", f"- **data**: {data}", f"- **latency**: {latency}"]


def _data_source(data: str) -> str:
    """How the report names the search's ``--data``."""
    if data == "synthetic":
        return ("**synthetic** generated images (class templates plus noise): a smoke test, the ranking says nothing "
                "about accuracy on real data (give `--data`)")
    return "none" if data == "none" else f"`{data}`"


def _data_identity(described: Mapping[str, Any]) -> str:
    """A dataset's identity (:meth:`Dataset.describe`) in words."""
    return (f"data `{described.get('fingerprint')}`: {described.get('classes')} classes, {described.get('train')} "
            f"training images")


def _split(data: Dataset) -> str:
    """How a search uses ``data``'s splits (its test split is the part held out of the training set)."""
    return (f"{data.num_classes} classes, trained on {len(data.train)} images, ranked on {len(data.test)} images held "
            "out of the training split (never the test set)")


def _budget(recipe: TrainConfig) -> str:
    """A training recipe's budget in words (it gives epochs or steps)."""
    if recipe.epochs is None:
        return f"{recipe.steps} steps"
    return f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}"


def _front(records: Sequence[Record], objective: Objective) -> list[Record]:
    done = [r for r in records if r.state == "complete" and LATENCY_METRIC in r.metrics]
    pts = [(r.metrics[objective.metric], -r.metrics[LATENCY_METRIC]) for r in done]
    return sorted((done[i] for i in pareto_front(pts)), key=lambda r: r.metrics[LATENCY_METRIC])


def write_report(run_dir: Path, records: Sequence[Record], objective: Objective, fixed: Sequence[FixedPoint],
                 *, top_k: int, title: str, config: dict[str, Any], notes: Mapping[str, str] | None = None,
                 sections: Sequence[str] = (), basis: Sequence[str] = (), progress: bool = False) -> Path:
    """Write every output file; return the path of ``report.md``. ``basis`` are the report's first
    lines, what ranked the candidates (:func:`ranking_basis`); ``notes`` (architecture hash ->
    text) annotate the top candidates (a differentiable search marks its derived network);
    ``sections`` are markdown blocks added before the file list. ``progress`` shows a bar over
    the files written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with tqdm(total=4, desc="report", unit="step", disable=not progress, dynamic_ncols=True) as bar:
        text = _write_outputs(run_dir, records, objective, fixed, top_k, title, config, notes or {}, sections, basis,
                              bar)
    return atomic_write_text(run_dir / "report.md", text)


def _write_outputs(run_dir: Path, records: Sequence[Record], objective: Objective, fixed: Sequence[FixedPoint],
                   top_k: int, title: str, config: dict[str, Any], notes: Mapping[str, str],
                   sections: Sequence[str], basis: Sequence[str], bar: Any) -> str:
    """Write every output but ``report.md``, one step of ``bar`` (a tqdm bar of 4) each: the JSON
    files, ``top/``, the plot, and the report's text, which is returned."""
    bar.set_postfix_str("candidates.json, pareto.json, fixed_points.json", refresh=False)
    atomic_write_json(run_dir / "candidates.json", [r.to_dict() for r in records])
    front = _front(records, objective)
    atomic_write_json(run_dir / "pareto.json", [r.to_dict() for r in front])
    atomic_write_json(run_dir / "fixed_points.json", [f.to_dict() for f in fixed])
    bar.update(1)
    bar.set_postfix_str("top/", refresh=False)

    zoo_hashes = {f.arch.hash() for f in fixed} | {zoo.get(n).hash() for n in zoo.names()}
    ranked = sorted((r for r in records if r.state == "complete"), key=lambda r: -objective.best_key(r.metrics))
    seen: set[str] = set()
    top: list[Record] = []
    for r in ranked:
        h = r.arch.hash()
        if h not in zoo_hashes and h not in seen:
            seen.add(h)
            top.append(r)
        if len(top) == top_k:
            break
    top_dir = run_dir / "top"
    for old in top_dir.glob("rank*.json"):
        old.unlink()
    top_files = [r.arch.save(top_dir / f"rank{i:02d}_{r.arch.hash()}.json") for i, r in enumerate(top, 1)]
    bar.update(1)
    bar.set_postfix_str("pareto.png", refresh=False)
    plot = _plot(run_dir / "pareto.png", records, front, top, fixed, objective, title)
    bar.update(1)
    bar.set_postfix_str("report.md", refresh=False)
    text = _markdown(records, front, top, top_files, fixed, objective, title, config, plot, run_dir, notes, sections,
                     basis)
    bar.update(1)
    return text


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _markdown(records: Sequence[Record], front: Sequence[Record], top: Sequence[Record], top_files: Sequence[Path],
              fixed: Sequence[FixedPoint], objective: Objective, title: str, config: dict[str, Any],
              plot: Path | None, run_dir: Path, notes: Mapping[str, str], sections: Sequence[str],
              basis: Sequence[str]) -> str:
    m, lat = objective.metric, LATENCY_METRIC
    states = {s: sum(1 for r in records if r.state == s) for s in ("complete", "failed", "infeasible")}
    lines = [f"# {title}", "", *basis, *([""] if basis else [])]
    lines += [f"- space `{config['space']}`, strategy `{config['strategy']}`, evaluator `{config['evaluator']}` "
              f"(metric `{m}`), objective `{objective.kind}` ({', '.join(objective.names)})",
              f"- latency table `{config['latency_table']}`; constraints: max latency {_fmt(config['max_latency_ms'])} ms, "
              f"max params {_fmt(config['max_params'])}, max MACs {_fmt(config['max_macs'])}",
              f"- candidates: {states['complete']} evaluated, {states['failed']} failed, "
              f"{states['infeasible']} rejected by constraints before evaluation", ""]
    if plot is not None:
        lines += [f"![{m} vs predicted latency]({plot.name})", ""]
    note_col = " note |" if notes else ""
    lines += ["## Top new candidates", "", f"| rank | hash | {m} | {lat} | params | MACs | {objective.names[0]} | file |"
              + note_col, "|---|---|---|---|---|---|---|---|" + ("---|" if notes else "")]
    for i, (r, f) in enumerate(zip(top, top_files, strict=True), 1):
        lines.append(f"| {i} | `{r.arch.hash()}` | {_fmt(r.metrics.get(m))} | {_fmt(r.metrics.get(lat))} | "
                     f"{_fmt(r.metrics.get('params'))} | {_fmt(r.metrics.get('macs_conv_linear'))} | "
                     f"{_fmt(objective.best_key(r.metrics))} | `{f.relative_to(run_dir)}` |"
                     + (f" {notes.get(r.arch.hash(), '')} |" if notes else ""))
    lines += ["", "## Fixed points (zoo), same evaluators", "",
              f"| net | {m} | {lat} | params | MACs | note |", "|---|---|---|---|---|---|"]
    for f in fixed:
        lines.append(f"| {f.name} | {_fmt(f.metrics.get(m))} | {_fmt(f.metrics.get(lat))} | "
                     f"{_fmt(f.metrics.get('params'))} | {_fmt(f.metrics.get('macs_conv_linear'))} | "
                     f"{'; '.join(filter(None, (f.reason, *f.notes)))} |")
    lines += ["", f"## Pareto front ({m} up, {lat} down): {len(front)} candidates", "",
              f"| hash | {m} | {lat} | params |", "|---|---|---|---|"]
    for r in front:
        lines.append(f"| `{r.arch.hash()}` | {_fmt(r.metrics.get(m))} | {_fmt(r.metrics.get(lat))} | "
                     f"{_fmt(r.metrics.get('params'))} |")
    if top:
        lines += ["", "## Best candidate", "", "```", top[0].arch.to_str().rstrip(), "```"]
    for section in sections:
        lines += ["", section.rstrip()]
    lines += ["", "Files: `candidates.json`, `pareto.json`, `fixed_points.json`, `top/`, `config.json`.",
              "Export a candidate: `nas export top/rank01_<hash>.json --format py --out net.py`.", ""]
    return "\n".join(lines)


def _plot(path: Path, records: Sequence[Record], front: Sequence[Record], top: Sequence[Record],
          fixed: Sequence[FixedPoint], objective: Objective, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, lat = objective.metric, LATENCY_METRIC
    done = [r for r in records if r.state == "complete" and lat in r.metrics]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter([r.metrics[lat] for r in done], [r.metrics[m] for r in done], s=12, c="0.7", label="candidates")
    ax.plot([r.metrics[lat] for r in front], [r.metrics[m] for r in front], "-o", c="tab:red", ms=4,
            label="Pareto front")
    ax.scatter([r.metrics[lat] for r in top], [r.metrics[m] for r in top], s=60, facecolors="none",
               edgecolors="tab:blue", label="top new")
    placed = [f for f in fixed if m in f.metrics and lat in f.metrics]
    if placed:
        ax.scatter([f.metrics[lat] for f in placed], [f.metrics[m] for f in placed], marker="*", s=120,
                   c="tab:green", label="fixed points (zoo)")
        for f in placed:
            ax.annotate(f.name, (f.metrics[lat], f.metrics[m]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{lat} (predicted from the latency table)")
    ax.set_ylabel(m)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path

