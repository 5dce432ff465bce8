"""Training of the slice-position classifier from slice positions (ranking-derived or any other source).

Cross-entropy on the three positions plus a smooth-L1 term on the continuous position; the best validation
checkpoint (subject-wise split) is published atomically, and only when it beats the served model on the same
validation set.
"""

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .engine import report, split_subjects
from .options import check_budget, request_values
from .position import POSITIONS, PositionNet, PositionSpec, load_position, predict_positions, publish_position


@dataclass(frozen=True)
class PositionTrainOptions:
    """Options of one slice-position training run (request params of the ``slice_position`` train task).

    Args:
        max_epochs: epochs at most.
        max_minutes: wall-clock budget.
        val_split: fraction of subjects held out for validation.
        device: ``cpu`` or ``cuda``; CUDA when present by default.
        batch_size: slices per step.
        learning_rate: initial AdamW learning rate (polynomial decay over the budget).
        position_weight: weight of the continuous-position loss beside cross-entropy.
        from_scratch: ignore the served model's weights.
        seed: random seed.
    """

    max_epochs: int = 40
    max_minutes: float = 5.0
    val_split: float = 0.2
    device: Optional[str] = None
    batch_size: int = 64
    learning_rate: float = 2e-3
    position_weight: float = 0.5
    from_scratch: bool = False
    seed: int = 0

    @classmethod
    def from_request(cls, request: Dict) -> "PositionTrainOptions":
        """Validate request params; raise ``ValueError`` with a readable message on bad ones."""
        opts = cls(**request_values(cls, request))
        check_budget(opts)
        if opts.learning_rate <= 0 or opts.position_weight < 0:
            raise ValueError("learning_rate must be > 0 and position_weight >= 0")
        return opts


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


@dataclass
class PositionTrainResult:
    published: bool
    best_val: Dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    history: List[Dict] = field(default_factory=list)


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
    return {"accuracy": float(np.mean(predicted == labels)), "macro_f1": float(np.mean(f1s)), "slices": int(len(labels))}


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


def _better(a: Dict[str, float], b: Optional[Dict[str, float]]) -> bool:
    """Higher macro F1 wins, then accuracy, then the smaller position error.

    Not accuracy first: with most slices in the LV, a model that calls every slice "in the LV" scores high.
    """
    if b is None:
        return True

    def key(v: Dict[str, float]):
        return (round(v["macro_f1"], 6), round(v["accuracy"], 6), -(v.get("position_mae") or 0.0))

    return key(a) > key(b)


def train_position(stacks: List[LabelledStack], checkpoint_path: str, options: PositionTrainOptions, *,
                   spec: Optional[PositionSpec] = None, val_stacks: Optional[List[LabelledStack]] = None,
                   record_extra: Optional[Dict] = None, log: Callable[..., None] = report) -> PositionTrainResult:
    """Train the slice-position network and publish its best validation checkpoint.

    Args:
        stacks: labelled frames (split subject-wise into training and validation unless ``val_stacks`` is given).
        checkpoint_path: where the served model lives.
        options: run options.
        spec: architecture (must match the inputs' window).
        val_stacks: a fixed validation set (benchmarks); otherwise ``options.val_split`` of the subjects.
        record_extra: fields added to the model record (e.g. where the labels came from).
        log: progress callback ``log(event, **fields)``.
    """
    start = time.time()
    torch.manual_seed(options.seed)
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    spec = spec or PositionSpec()
    if val_stacks is None:
        subjects = [s.subject for s in stacks]
        train_subjects, _ = split_subjects(subjects, {s: "" for s in subjects}, options.val_split, options.seed)
        train = [s for s in stacks if s.subject in train_subjects]
        val = [s for s in stacks if s.subject not in train_subjects]
    else:
        train, val = stacks, val_stacks
    x = torch.cat([s.x[s.labels >= 0] for s in train]) if train else torch.zeros((0, 3, spec.window, spec.window))
    place = torch.cat([s.place[s.labels >= 0] for s in train]) if train else torch.zeros((0, 2))
    y = torch.from_numpy(np.concatenate([s.labels[s.labels >= 0] for s in train]).astype(np.int64)) if train else torch.zeros(0, dtype=torch.long)
    t = torch.from_numpy(np.concatenate([s.continuous[s.labels >= 0] for s in train]).astype(np.float32)) if train else torch.zeros(0)
    if len(y) == 0 or not any((s.labels >= 0).any() for s in val):
        raise ValueError("slice-position training needs labelled slices of at least 2 subjects (training and validation)")
    counts = np.bincount(y.numpy(), minlength=len(spec.classes)).astype(np.float64)
    # Few slices lie outside the LV: weight classes by the square root of their inverse frequency, so the rare
    # ends are not ignored yet not over-predicted either.
    weight = np.sqrt(counts.sum() / np.maximum(counts, 1))
    class_weight = torch.tensor(weight / weight.mean(), dtype=torch.float32, device=device)
    model = spec.build().to(device)
    best: Optional[Dict[str, float]] = None
    served_val = None
    if os.path.isfile(checkpoint_path) and not options.from_scratch:
        try:
            served, _ = load_position(checkpoint_path, device)
            if served.spec == spec:
                model.load_state_dict(served.state_dict())
            best = served_val = evaluate_position(served, val, device)
        except Exception as e:  # a damaged checkpoint must not block retraining
            log("warning", message=f"served slice-position checkpoint unreadable, training from scratch: {e}")
    log("start", train_slices=int(len(y)), val_slices=int(sum((s.labels >= 0).sum() for s in val)),
        class_counts={name: int(n) for name, n in zip(spec.classes, counts)}, device=device, served_val=served_val)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(options.seed)
    steps_per_epoch = max(1, math.ceil(len(y) / options.batch_size))
    budget_s = options.max_minutes * 60
    result = PositionTrainResult(published=False)
    train_start = time.time()
    for epoch in range(1, options.max_epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            done = max((epoch - 1 + step / steps_per_epoch) / options.max_epochs, (time.time() - train_start) / budget_s)
            for group in optimizer.param_groups:
                group["lr"] = options.learning_rate * max(1 - min(done, 1.0), 0.01) ** 0.9
            idx = order[step * options.batch_size : (step + 1) * options.batch_size]
            if len(idx) < 2:
                continue  # batch norm needs two samples
            xb = x[idx]
            if torch.rand(1, generator=gen).item() < 0.5:  # a left-right flip keeps the position
                xb = torch.flip(xb, (-1,))
            out = model(xb.to(device), place[idx].to(device))
            loss = F.cross_entropy(out[:, : len(spec.classes)], y[idx].to(device), weight=class_weight)
            tb = t[idx].to(device)
            known = torch.isfinite(tb)
            if options.position_weight and known.any():
                loss = loss + options.position_weight * F.smooth_l1_loss(out[known, -1], tb[known])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if time.time() - train_start >= budget_s:
                break
        val_figures = evaluate_position(model, val, device)
        improved = _better(val_figures, best)
        if improved:
            best = val_figures
            kind = "slice_position" if spec.classes == POSITIONS else "slice_classifier"
            record = {"kind": kind, "position_spec": asdict(spec), "trained_at": time.time(), "epochs": epoch,
                      "train_slices": int(len(y)), "val": val_figures, "options": asdict(options),
                      "metric": "macro_f1", "score": val_figures["macro_f1"],
                      "class_counts": {name: int(n) for name, n in zip(spec.classes, counts)}, **(record_extra or {})}
            publish_position(checkpoint_path, model, record)
            result.published = True
        elapsed = time.time() - train_start
        entry = {"epoch": epoch, "max_epochs": options.max_epochs, "loss": float(np.mean(losses)) if losses else None,
                 "val": val_figures, "best_val": best, "published": improved, "model": "slice_position",
                 "metric": "macro_f1", "score": val_figures["macro_f1"], "best_score": (best or {}).get("macro_f1"), "elapsed_s": round(elapsed, 1),
                 "max_minutes": options.max_minutes,
                 "percent": round(100 * min(1.0, max(epoch / options.max_epochs, elapsed / budget_s)), 1)}
        result.history.append(entry)
        log("epoch", **entry)
        if elapsed >= budget_s:
            break
    result.best_val, result.epochs, result.seconds = best or {}, len(result.history), time.time() - start
    log("done", model="slice_position", metric="macro_f1", published=result.published, best_val=best,
        best_score=(best or {}).get("macro_f1"), epochs=result.epochs, seconds=round(result.seconds, 1),
        served_val=served_val)
    return result
