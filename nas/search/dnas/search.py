"""``nas search --strategy fbnet|proxyless``: train a supernet, derive architectures, and judge them
like every other search.

The run directory gets the same outputs as an ask/tell search (``config.json``, ``cache/``,
``candidates.json``, ``pareto.json``, ``fixed_points.json``, ``top/``, ``report.md``,
``pareto.png``; :mod:`nas.search.report`), plus ``dnas.ckpt`` (the supernet checkpoint a re-run
resumes from) and ``dnas.json`` (the training history, the learned distribution per layer and the
derived architectures). Every derived architecture is a point of the space; each is screened
(table latency, complexity, hard constraints) and scored by the run's evaluators, exactly as the
runner does (:meth:`nas.search.runner.Evaluation.judge`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evaluators.base import Evaluator
from evaluators.datasets import Dataset
from nas.io import atomic_write_json
from nas.search.config import SearchConfig
from nas.search.dnas.derive import Derived, derive
from nas.search.dnas.supernet import LatencyModel, Supernet
from nas.search.dnas.train import DNASTrainer, TrainResult
from nas.search.dnas_settings import DNASSettings
from nas.search.runner import Evaluation, RunState
from nas.search.store import Record
from search_spaces.layerwise import LayerwiseView, layerwise_view

__all__ = ["DNASSearch"]


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"

CHECKPOINT = "dnas.ckpt"
SUMMARY = "dnas.json"


@dataclass
class DNASSearch:
    """A configured differentiable search; :meth:`run` trains (or resumes), derives and judges.

    Its interface matches :class:`nas.search.runner.Search` (``run``, ``write_report``, ``best``,
    ``state``), so ``nas search`` treats both alike.
    """

    config: SearchConfig
    settings: DNASSettings
    evaluation: Evaluation
    view: LayerwiseView
    data: Dataset
    state: RunState = field(default_factory=RunState)
    derived: list[Derived] = field(default_factory=list)
    training: TrainResult | None = None

    @classmethod
    def from_config(cls, config: SearchConfig, *, score: Evaluator | None = None, data: Dataset | None = None,
                    ) -> DNASSearch:
        """Build every part from ``config``; ``score`` (with the ``data`` the supernet trains on,
        which it then requires) replaces the configured expensive evaluator."""
        settings = config.dnas_settings()
        if (score is None) != (data is None):
            raise ValueError("give both score and data (the supernet's training data), or neither")
        evaluation = Evaluation.from_config(config, score=score,
                                            num_classes=10 if data is None else data.num_classes)
        data = data if data is not None else evaluation.data
        assert data is not None  # Evaluation.from_config loads it when no score is given
        view = layerwise_view(evaluation.space)
        atomic_write_json(config.run_dir / "config.json", config.to_dict())
        return cls(config, settings, evaluation, view, data)

    def run(self, *, progress: bool = True) -> RunState:
        """Train the supernet for the configured epochs (resuming ``dnas.ckpt``), derive the
        argmax and ``dnas_samples`` sampled architectures, and judge them."""
        s = self.settings
        if self.config.latency.measure_missing:  # what LatencyModel.from_table would measure, with a bar
            widest = max(len(layer) for layer in self.view.layers)
            self.evaluation.measure_missing([self.view.arch([k % len(layer) for layer in self.view.layers])
                                             for k in range(widest)], progress=progress)
        latency = LatencyModel.from_table(self.view, self.evaluation.table, measure_missing=self.config.latency.measure_missing)
        with torch.random.fork_rng():
            torch.manual_seed(s.seed)
            supernet = Supernet(self.view)
        trainer = DNASTrainer(supernet, latency, self.data, s, checkpoint=self.config.run_dir / CHECKPOINT,
                              identity=self.config.identity())
        self.training = trainer.fit(progress=progress)
        probs = supernet.probabilities()
        self.derived = derive(self.view, probs, latency, samples=s.samples, seed=s.seed)
        if self.config.latency.measure_missing:  # what judging would measure, with a bar
            self.evaluation.measure_missing([d.arch for d in self.derived], progress=progress)
        self.state = RunState()
        for i, d in enumerate(self.derived):
            self.state.add(self.evaluation.judge(i, d.point, d.arch))
        atomic_write_json(self.config.run_dir / SUMMARY, self._summary(probs))
        return self.state

    def _summary(self, probs: list[torch.Tensor]) -> dict[str, Any]:
        assert self.training is not None
        return {
            "strategy": self.config.strategy.name, "mode": self.settings.mode, "coverage": self.view.coverage,
            "epochs_done": len(self.training.history), "complete": self.training.complete,
            "history": list(self.training.history),
            "distribution": [{"choice": layer.choice, "probabilities": {
                label: round(float(v), 6) for label, v in zip(layer.labels, p.tolist(), strict=True)}}
                for layer, p in zip(self.view.layers, probs, strict=True)],
            "derived": [d.to_dict(self.view) for d in self.derived],
        }

    def write_report(self, *, compare_zoo: bool = True, progress: bool = False) -> Path:
        """Write the run's outputs (:meth:`nas.search.runner.Evaluation.write_report`): the
        derived networks are the result, so ``top/`` holds all of them (ranked by the evaluator,
        the argmax of ``P_theta`` marked) and the report says how the supernet trained."""
        notes = {d.arch.hash(): ("**derived: argmax of P_theta**" if d.kind == "argmax" else
                                 f"sample of P_theta (log p {d.log_prob:.2f})") for d in self.derived}
        return self.evaluation.write_report(self.config, self.state.records, compare_zoo=compare_zoo,
                                            top_k=max(self.config.output.top_k, len(self.derived)), notes=notes,
                                            sections=[self._report_section()] if self.training else [],
                                            progress=progress)

    def _report_section(self) -> str:
        """How the supernet trained and what it learned (the full history is in ``dnas.json``)."""
        assert self.training is not None
        history = self.training.history
        first, last = history[0], history[-1]
        max_entropy = sum(math.log(len(layer)) for layer in self.view.layers) / len(self.view.layers)
        argmax = next((d for d in self.derived if d.kind == "argmax"), None)
        lines = [f"## Differentiable search ({self.config.strategy.name}, `{SUMMARY}`)", "",
                 f"- supernet: {self.view.coverage}; {len(history)} of {self.settings.epochs} epochs"
                 + ("" if self.training.complete else " (stopped early: re-run to continue)"),
                 f"- weight cross-entropy {_num(first['weight_ce'])} (first epoch) -> {_num(last['weight_ce'])} (last); "
                 f"chance is {math.log(self.view.head.num_classes):.3f}",
                 f"- expected latency under P_theta {_num(first['expected_latency_ms'])} -> "
                 f"{_num(last['expected_latency_ms'])} ms; mean entropy per layer {_num(last['mean_entropy'])} of "
                 f"{max_entropy:.3f} (uniform)" + (" - the distribution barely moved: train longer or raise "
                                                   "--dnas-arch-lr" if last["mean_entropy"] > 0.97 * max_entropy else "")]
        if argmax is not None:
            lines += [f"- derived network (argmax): `{argmax.arch.hash()}`, {argmax.latency_ms:.4g} ms by the "
                      f"latency model; {len(self.derived) - 1} samples of P_theta besides it, all in `top/`"]
        return "\n".join(lines)

    def best(self) -> Record | None:
        """The best complete derived architecture by the objective's first value."""
        return self.evaluation.best(self.state.records)
