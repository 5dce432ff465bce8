"""The one training loop: every model (segmentation, QC, slice position) trains through :func:`run_training`.

A model brings a :class:`TrainingRecipe` (its data, network, loss, validation, what "better" means and how it is
published); the loop owns what must be the same everywhere: the seed, the time budget, the learning-rate decay,
publish-if-better against the served model on the same validation set, the history file and the progress lines.

Time budget: ``max_minutes`` counts the loop itself (from the first step; data preparation is reported apart as
``prepare_s``). The run stops at the first step past the budget, validates that epoch, and publishes it if better.
"""

import math
import os
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from cmrassist_server.core.checkpoints import ModelRecord, atomic_write_json, history_path, remove_partial_files
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.options import TrainOptions
from cmrassist_server.core.resume import load_state, save_state
from CMRAssistCore.progress import progress_line

Log = Callable[..., None]


def report(event: str, **fields: Any) -> None:
    """Print one progress line (``CMRAssistCore.progress``); MONAI Label shows them in ``GET /train/``."""
    print(progress_line(event, **fields), flush=True)
    sys.stdout.flush()


@dataclass
class TrainResult:
    """What a run did: whether it published, its best validation figures, epochs, seconds (of the training loop,
    over every resumption of a stopped run), per-epoch history."""

    published: bool = False
    best_val: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    history: List[Dict[str, Any]] = field(default_factory=list)
    served_val: Optional[Dict[str, Any]] = None

    def summary(self) -> Dict[str, Any]:
        return {
            "published": self.published,
            "best_val": self.best_val,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 1),
        }


class TrainingRecipe(ABC):
    """The hooks one model gives the loop.

    Attributes:
        kind: the model's name in records and progress lines.
        metric: the key of :meth:`validate`'s figures that decides publication.
        higher_is_better: whether a larger ``metric`` is better.
    """

    kind: str = ""
    metric: str = ""
    higher_is_better: bool = True

    @abstractmethod
    def prepare(self, device: str, log: Log) -> None:
        """Load and split the data, load the served model (if any) for warm start and baseline."""

    @abstractmethod
    def build(self) -> torch.nn.Module:
        """The network to train, on the device, warm-started from the served one where they match."""

    def served_val(self) -> Optional[Dict[str, Any]]:
        """Validation figures of the served model on the same validation set (``None`` when none is served)."""
        return None

    @abstractmethod
    def steps_per_epoch(self) -> int: ...

    @abstractmethod
    def batch(self) -> Any:
        """The next training batch (``None`` to skip a step)."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor: ...

    @abstractmethod
    def validate(self, model: torch.nn.Module) -> Dict[str, Any]: ...

    def better(self, new: Dict[str, Any], old: Dict[str, Any]) -> bool:
        a, b = new.get(self.metric), old.get(self.metric)
        if b is None or not math.isfinite(b):
            return a is not None
        return a is not None and (a > b if self.higher_is_better else a < b)

    def sizes(self) -> Dict[str, int]:
        """``{"train_size": ..., "val_size": ...}`` for the record and the start event."""
        return {"train_size": 0, "val_size": 0}

    def describe(self) -> Dict[str, Any]:
        """More fields for the start event (e.g. class counts, QC sources)."""
        return {}

    def details(self) -> Dict[str, Any]:
        """Model-specific fields of the record."""
        return {}

    def rng_state(self) -> Dict[str, Any]:
        """The recipe's own random states (samplers, augmentation generators), saved with a run's state."""
        return {}

    def set_rng_state(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`rng_state` gave (a resumed run draws the same batches as an unbroken one)."""
        if state:
            raise ValueError(f"{self.kind} keeps no random state of its own, yet a saved state holds {sorted(state)}")

    @abstractmethod
    def publish(self, model: torch.nn.Module, record: ModelRecord) -> None:
        """Write the checkpoint (``core.checkpoints.publish`` with the model's spec and preprocessing)."""

    def load_served(self, checkpoint: str, options: TrainOptions, loader: Callable[[str], Any], log: Log) -> Any:
        """The served model for warm start and baseline: ``None`` with ``from_scratch``, when none is served, or when
        it cannot be loaded (a damaged checkpoint must not block retraining: a warning, then training from scratch)."""
        if options.from_scratch or not os.path.isfile(checkpoint):
            return None
        try:
            return loader(checkpoint)
        except CMRAssistError as e:
            log("warning", message=f"served {self.kind} checkpoint unreadable, training from scratch: {e}")
            return None

    @staticmethod
    def warm_started(model: torch.nn.Module, served: Optional[torch.nn.Module], same_spec: bool) -> torch.nn.Module:
        """``model`` with the served network's weights when both have the same architecture."""
        if served is not None and same_spec:
            model.load_state_dict(served.state_dict())
        return model


def learning_rate(options: TrainOptions, done: float) -> float:
    """Polynomial decay (power 0.9) to 1% of the initial rate over the run (epochs or time, whichever is further)."""
    return options.learning_rate * max(1 - min(done, 1.0), 0.01) ** 0.9


def run_training(
    recipe: TrainingRecipe,
    options: TrainOptions,
    checkpoint: str,
    *,
    log: Log = report,
    state_path: Optional[str] = None,
) -> TrainResult:
    """Prepare, train within the budget, publish each better epoch to ``checkpoint``; see the module docstring.

    Args:
        state_path: where the run's state is saved after every epoch (``core.resume``); a state already there is
            continued from its last epoch, as if the run had never stopped. ``None``: no state is kept.
    """
    start = time.time()
    remove_partial_files(checkpoint)
    torch.manual_seed(options.seed)
    device = default_device(options.device)
    recipe.prepare(device, log)
    model = recipe.build()
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    result = TrainResult(served_val=recipe.served_val())
    saved = load_state(state_path) if state_path else None
    run = _Run(best=result.served_val) if saved is None else _resumed(saved, recipe, model, optimizer, result)
    common = {"model": recipe.kind, "metric": recipe.metric}
    prepare_s = round(time.time() - start, 1)
    log(
        "start",
        **common,
        device=device,
        prepare_s=prepare_s,
        served_val=result.served_val,
        resumed_at=run.epoch,
        **recipe.sizes(),
        **recipe.describe(),
    )
    budget_s, loop_start = options.max_minutes * 60, time.time() - run.elapsed_s
    while not run.finished and run.epoch < options.max_epochs:
        run.epoch += 1
        losses = _epoch(recipe, model, optimizer, options, run.epoch, loop_start, budget_s)
        val = recipe.validate(model)
        improved = run.best is None or recipe.better(val, run.best)
        if improved:
            run.best = val
            recipe.publish(model, _record(recipe, options, val, run.epoch))
            result.published = True
        run.elapsed_s = time.time() - loop_start
        entry = {**common, **_epoch_entry(run, options, recipe.metric, _mean(losses), val, improved, budget_s)}
        result.history.append(entry)
        atomic_write_json(history_path(checkpoint), result.history)
        run.finished = run.elapsed_s >= budget_s or run.epoch >= options.max_epochs
        if state_path:  # saved before the event: a run stopped from here on continues after this epoch
            save_state(state_path, _state(run, recipe, model, optimizer, result))
        log("epoch", **entry)
    result.best_val, result.epochs, result.seconds = run.best or {}, len(result.history), run.elapsed_s
    _log_done(log, common, result, recipe.metric)
    return result


def _log_done(log: Log, common: dict, result: TrainResult, metric: str) -> None:
    log(
        "done",
        **common,
        published=result.published,
        best_val=result.best_val,
        best_score=result.best_val.get(metric),
        epochs=result.epochs,
        seconds=round(result.seconds, 1),
        served_val=result.served_val,
    )


def _epoch_entry(run, options: TrainOptions, metric: str, loss: float, val: dict, improved: bool, budget_s: float):
    """One epoch's line of the history and the log: its scores, the best so far, and how far the run is."""
    return {
        "epoch": run.epoch,
        "max_epochs": options.max_epochs,
        "loss": loss,
        "val": val,
        "best_val": run.best,
        "score": val.get(metric),
        "best_score": run.best.get(metric),
        "published": improved,
        "elapsed_s": round(run.elapsed_s, 1),
        "max_minutes": options.max_minutes,
        "percent": round(100 * min(1.0, max(run.epoch / options.max_epochs, run.elapsed_s / budget_s)), 1),
    }


@dataclass
class _Run:
    """Where a run stands after its last finished epoch (what a saved state restores)."""

    best: Optional[Dict[str, Any]] = None
    epoch: int = 0
    elapsed_s: float = 0.0
    finished: bool = False


def _state(run: _Run, recipe: TrainingRecipe, model, optimizer, result: TrainResult) -> Dict[str, Any]:
    return {
        "run": asdict(run),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "recipe_rng": recipe.rng_state(),
        "history": result.history,
        "published": result.published,
        "served_val": result.served_val,
    }


def _resumed(saved: Dict[str, Any], recipe: TrainingRecipe, model, optimizer, result: TrainResult) -> _Run:
    """Restore a saved state into the freshly prepared run; returns where it stands."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    recipe.set_rng_state(saved["recipe_rng"])
    result.history, result.published, result.served_val = (
        list(saved["history"]),
        saved["published"],
        saved["served_val"],
    )
    return _Run(**saved["run"])


def _record(recipe: TrainingRecipe, options: TrainOptions, val: Dict[str, Any], epoch: int) -> ModelRecord:
    return ModelRecord(
        kind=recipe.kind,
        metric=recipe.metric,
        val=val,
        score=val.get(recipe.metric),
        epochs=epoch,
        options=options.as_dict(),
        details=recipe.details(),
        **recipe.sizes(),
    )


def _mean(values: List[float]) -> Optional[float]:
    return float(np.mean(values)) if values else None


def _epoch(
    recipe: TrainingRecipe,
    model: torch.nn.Module,
    optimizer,
    options: TrainOptions,
    epoch: int,
    loop_start: float,
    budget_s: float,
) -> List[float]:
    """One epoch of steps (cut short at the budget); returns the step losses."""
    model.train()
    steps, losses = recipe.steps_per_epoch(), []
    for step in range(steps):
        done = max((epoch - 1 + step / steps) / options.max_epochs, (time.time() - loop_start) / budget_s)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(options, done)
        batch = recipe.batch()
        if batch is not None:
            loss = recipe.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if time.time() - loop_start >= budget_s:
            break
    return losses
