"""Slice-position training: the recipe the one training loop (``core.training``) runs for the slice classifier,
from slice positions (ranking-derived, from expert labels, or any other per-slice class such as the disease group).
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.options import TrainOptions, option
from cmrassist_server.core.splits import split_subjects
from cmrassist_server.core.training import Log, TrainingRecipe, TrainResult, report, run_training
from cmrassist_server.slice_position.network import (
    POSITIONS,
    PositionNet,
    PositionSpec,
    load_position,
    predict_positions,
    publish_position,
)


class PositionTrainOptions(TrainOptions):
    """Options of a slice-position run (request params of the ``slice_position`` train task); common ones in
    :class:`core.options.TrainOptions`.

    Args:
        position_weight: weight of the continuous-position loss beside cross-entropy.
    """

    max_epochs: int = option(40, low=1, high=100000)
    max_minutes: float = option(5.0, low=0, high=7 * 24 * 60, open_low=True)
    batch_size: int = option(64, low=2, high=1024)
    position_weight: float = option(0.5, low=0, high=100)


@dataclass
class LabelledStack:
    """One frame's network inputs and the positions known for some of its slices.

    Args:
        image_id: the frame's image id.
        subject: the patient (splits keep a patient's frames together).
        x: ``(slices, 3, window, window)`` inputs from :func:`position.stack_inputs`.
        place: ``(slices, 2)`` relative place in the stack.
        labels: ``(slices,)`` index into the spec's classes (``POSITIONS`` by default), -1 where unknown.
        continuous: ``(slices,)`` continuous position, NaN where unknown.
        frame: the frame number (as the ranking store holds it).
    """

    image_id: str
    subject: str
    x: torch.Tensor
    place: torch.Tensor
    labels: np.ndarray
    continuous: np.ndarray
    frame: int = 1


def classification_figures(labels: np.ndarray, probabilities: np.ndarray) -> Dict[str, float]:
    """Accuracy and macro F1 over the classes present in ``labels`` (no scikit-learn needed at serve time)."""
    if len(labels) == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "slices": 0}
    predicted = probabilities.argmax(1)
    f1s = []
    for c in np.unique(labels):
        tp = float(np.sum((predicted == c) & (labels == c)))
        denom = float(np.sum(predicted == c) + np.sum(labels == c))
        f1s.append(2 * tp / denom if denom else 0.0)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "macro_f1": float(np.mean(f1s)),
        "slices": int(len(labels)),
    }


def evaluate_position(model: PositionNet, stacks: Sequence[LabelledStack], device: str) -> Dict[str, float]:
    """Accuracy, macro F1 and mean absolute continuous-position error over the labelled slices of ``stacks``."""
    labels, probs, t_true, t_pred = [], [], [], []
    for s in stacks:
        known = s.labels >= 0
        if not known.any():
            continue
        p, t = predict_positions(model, s.x[known], s.place[known], device)
        labels.append(s.labels[known])
        probs.append(p)
        t_true.append(s.continuous[known])
        t_pred.append(t)
    if not labels:
        return {"accuracy": 0.0, "macro_f1": 0.0, "slices": 0, "position_mae": None}
    out = classification_figures(np.concatenate(labels), np.concatenate(probs))
    tt, tp = np.concatenate(t_true), np.concatenate(t_pred)
    ok = np.isfinite(tt)
    out["position_mae"] = float(np.abs(tt[ok] - tp[ok]).mean()) if ok.any() else None  # None: JSON has no NaN
    return out


class PositionRecipe(TrainingRecipe):
    """The slice classifier's hooks for the training loop: cross-entropy on the classes (weighted by the square
    root of their inverse frequency) plus a smooth-L1 term on the continuous position.

    Args:
        stacks: labelled frames (split subject-wise into training and validation unless ``val_stacks`` is given).
        checkpoint: where the served model lives.
        options: run options.
        spec: architecture (must match the inputs' window).
        val_stacks: a fixed validation set (benchmarks); otherwise ``options.val_split`` of the subjects.
        record_extra: fields added to the model record (e.g. where the labels came from).
    """

    metric = "macro_f1"

    def __init__(
        self,
        stacks: List[LabelledStack],
        checkpoint: str,
        options: PositionTrainOptions,
        *,
        spec: Optional[PositionSpec] = None,
        val_stacks: Optional[List[LabelledStack]] = None,
        record_extra: Optional[Dict] = None,
    ):
        self.stacks, self.val_stacks, self.checkpoint, self.options = stacks, val_stacks, checkpoint, options
        self.spec = spec or PositionSpec()
        self.kind = "slice_position" if self.spec.classes == POSITIONS else "slice_classifier"
        self.record_extra = record_extra or {}
        self.served: Optional[PositionNet] = None

    def prepare(self, device: str, log: Log) -> None:
        self.device = device
        self.train, self.val = _split(self.stacks, self.val_stacks, self.options)
        self.x, self.place, self.y, self.t = _training_tensors(self.train, self.spec)
        if len(self.y) == 0 or not any((s.labels >= 0).any() for s in self.val):
            raise CMRAssistError(
                "slice-position training needs labelled slices of at least 2 subjects (training and validation)", 409
            )
        self.counts = np.bincount(self.y.numpy(), minlength=len(self.spec.classes)).astype(np.float64)
        # Few slices lie outside the LV: weight classes by the square root of their inverse frequency, so the rare
        # ends are not ignored yet not over-predicted either.
        weight = np.sqrt(self.counts.sum() / np.maximum(self.counts, 1))
        self.class_weight = torch.tensor(weight / weight.mean(), dtype=torch.float32, device=device)
        self.served = self.load_served(self.checkpoint, self.options, lambda p: load_position(p, device)[0], log)
        self.generator = torch.Generator().manual_seed(self.options.seed)
        self.order, self.step = torch.zeros(0, dtype=torch.long), 0

    def build(self) -> torch.nn.Module:
        same = self.served is not None and self.served.spec == self.spec
        return self.warm_started(self.spec.build().to(self.device), self.served, same)

    def served_val(self) -> Optional[Dict[str, float]]:
        return evaluate_position(self.served, self.val, self.device) if self.served is not None else None

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.y) / self.options.batch_size))

    def batch(self):
        if self.step >= self.steps_per_epoch() or not len(self.order):
            self.order, self.step = torch.randperm(len(self.y), generator=self.generator), 0
        idx = self.order[self.step * self.options.batch_size : (self.step + 1) * self.options.batch_size]
        self.step += 1
        if len(idx) < 2:
            return None  # normalisation over a single sample says nothing
        xb = self.x[idx]
        if torch.rand(1, generator=self.generator).item() < 0.5:  # a left-right flip keeps the position
            xb = torch.flip(xb, (-1,))
        return xb, self.place[idx], self.y[idx], self.t[idx]

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor:
        xb, place, y, t = (b.to(self.device) for b in batch)
        out = model(xb, place)
        loss = F.cross_entropy(out[:, : len(self.spec.classes)], y, weight=self.class_weight)
        known = torch.isfinite(t)
        if self.options.position_weight and known.any():
            loss = loss + self.options.position_weight * F.smooth_l1_loss(out[known, -1], t[known])
        return loss

    def validate(self, model: torch.nn.Module) -> Dict[str, float]:
        return evaluate_position(model, self.val, self.device)

    def better(self, a: Dict[str, float], b: Dict[str, float]) -> bool:
        """Higher macro F1 wins, then accuracy, then the smaller position error.

        Not accuracy first: with most slices in the LV, a model that calls every slice "in the LV" scores high.
        """

        def key(v: Dict[str, float]):
            return (round(v["macro_f1"], 6), round(v["accuracy"], 6), -(v.get("position_mae") or 0.0))

        return key(a) > key(b)

    def sizes(self) -> Dict[str, int]:
        return {"train_size": int(len(self.y)), "val_size": int(sum((s.labels >= 0).sum() for s in self.val))}

    def describe(self) -> Dict:
        return {"class_counts": {name: int(n) for name, n in zip(self.spec.classes, self.counts)}}

    def details(self) -> Dict:
        return {"unit": "slices", **self.describe(), **self.record_extra}

    def rng_state(self) -> Dict:
        return {"shuffle": self.generator.get_state(), "order": self.order, "step": self.step}

    def set_rng_state(self, state: Dict) -> None:
        self.generator.set_state(state["shuffle"])
        self.order, self.step = state["order"], int(state["step"])

    def publish(self, model: torch.nn.Module, record: ModelRecord) -> None:
        publish_position(self.checkpoint, model, record)


def _split(
    stacks: List[LabelledStack], val_stacks: Optional[List[LabelledStack]], options: PositionTrainOptions
) -> Tuple[List[LabelledStack], List[LabelledStack]]:
    if val_stacks is not None:
        return stacks, val_stacks
    subjects = [s.subject for s in stacks]
    train_subjects, _ = split_subjects(subjects, dict.fromkeys(subjects, ""), options.val_split, options.seed)
    return [s for s in stacks if s.subject in train_subjects], [s for s in stacks if s.subject not in train_subjects]


def _training_tensors(train: List[LabelledStack], spec: PositionSpec):
    """``(x, place, class index, continuous position)`` of every labelled training slice."""
    if not train:
        return (
            torch.zeros((0, 3, spec.window, spec.window)),
            torch.zeros((0, 2)),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0),
        )
    x = torch.cat([s.x[s.labels >= 0] for s in train])
    place = torch.cat([s.place[s.labels >= 0] for s in train])
    y = torch.from_numpy(np.concatenate([s.labels[s.labels >= 0] for s in train]).astype(np.int64))
    t = torch.from_numpy(np.concatenate([s.continuous[s.labels >= 0] for s in train]).astype(np.float32))
    return x, place, y, t


def train_position(
    stacks: List[LabelledStack],
    checkpoint: str,
    options: PositionTrainOptions,
    *,
    log: Log = report,
    state_path: Optional[str] = None,
    **recipe_args,
) -> TrainResult:
    """Train the slice-position network and publish each better validation checkpoint.

    Args:
        stacks: labelled frames (see :class:`PositionRecipe`).
        checkpoint: where the served model lives.
        options: run options.
        log: progress callback ``log(event, **fields)``.
        state_path: where the run's state is kept after every epoch, and continued from (``core.resume``).
        recipe_args: ``spec``, ``val_stacks``, ``record_extra`` of :class:`PositionRecipe`.
    """
    recipe = PositionRecipe(stacks, checkpoint, options, **recipe_args)
    return run_training(recipe, options, checkpoint, log=log, state_path=state_path)
