"""The NNI execution engine of :class:`nas.search.nni_strategies.NNIStrategy`: models submitted by
an NNI strategy are evaluated by the litenas runner through the ask/tell bridge."""

from __future__ import annotations

from typing import Any, Protocol

from nni.nas.execution import ExecutionEngine
from nni.nas.execution.event import FinalMetricEvent, TrainingEndEvent
from nni.nas.space import ModelStatus

from nas.search.strategy import Values

__all__ = ["AskTellEngine", "Bridge"]


class Bridge(Protocol):
    """What the engine needs of the ask/tell side (:class:`nas.search.nni_strategies.NNIStrategy`),
    so that this module does not import it back."""

    @property
    def open(self) -> bool: ...

    def propose(self, model: Any) -> tuple[bool, Values | None]: ...

    def next_results(self) -> tuple[list[tuple[Any, Values | None]], bool]: ...


class AskTellEngine(ExecutionEngine):
    """An engine whose workers are the litenas runner's waiting asks.

    ``idle_worker_available`` blocks until an ask waits (dispatching the results told meanwhile,
    in this thread, which is the only one touching the NNI strategy's state), so NNI's polling
    loop never sleeps; ``submit_models`` hands each model to that ask and returns.
    """

    def __init__(self, bridge: Bridge):
        super().__init__()
        self.bridge = bridge
        self._history: list[Any] = []

    def submit_models(self, *models: Any) -> None:
        for model in models:
            self._history.append(model)
            answered, values = self.bridge.propose(model)
            if answered:
                self._finish(model, values)

    def _finish(self, model: Any, values: Values | None) -> None:
        if values is not None:
            self.dispatch_model_event(FinalMetricEvent(model, values[0]))
        self.dispatch_model_event(TrainingEndEvent(model, ModelStatus.Trained if values is not None
                                                   else ModelStatus.Failed))

    def idle_worker_available(self) -> bool:
        while True:
            results, idle = self.bridge.next_results()
            for model, values in results:
                self._finish(model, values)
            if not results:
                return idle

    def budget_available(self) -> bool:
        return self.bridge.open

    def list_models(self, status: ModelStatus | None = None) -> list[Any]:
        return [m for m in self._history if status is None or m.status == status]

    def wait_models(self, *models: Any) -> None:
        """Nothing to wait for: the runner evaluates, and a closing search abandons the rest."""

    def shutdown(self) -> None:
        """Nothing runs outside the litenas runner."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Stateless: the litenas store holds the history and replays it through the bridge."""
