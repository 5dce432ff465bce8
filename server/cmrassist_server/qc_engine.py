"""Training of the QC network (MSE on slice Dice and MVSF) within an epoch and time budget.

As for segmentation, the best validation checkpoint is published atomically, and only when it beats the QC
model already served on the same validation set.
"""

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .engine import prepare_cases, report, split_subjects
from .options import check_budget, request_values
from .cam_prior import CamPrior, load_prior
from .network import load_checkpoint
from .preprocess import CardiacPreprocessor, PreprocessConfig
from .qc_dataset import BalancedSampler, QCTrainingSet, build_training_set, snapshot_plans, train_snapshots
from .qc_metrics import CHECKED_CLASSES
from .qc_network import QCNet, QCSpec, load_qc, predict_slices, publish_qc


@dataclass(frozen=True)
class QCTrainOptions:
    """Options of one QC training run (request params of the ``qc`` train task).

    Args:
        max_epochs: epochs at most (an epoch = as many slices as the training set holds, drawn balanced).
        max_minutes: wall-clock budget of the QC network's training (snapshot training comes on top).
        val_split: fraction of subjects held out for validation.
        device: ``cpu`` or ``cuda``; CUDA when present by default.
        corruptions_per_case: corrupted copies of each reference frame.
        snapshots: weak segmentation models trained to add real model errors (0 for none).
        snapshot_minutes: budget of each snapshot.
        batch_size: slices per step.
        learning_rate: initial AdamW learning rate (polynomial decay over the budget).
        from_scratch: ignore the served QC model's weights.
        seed: random seed.
    """

    max_epochs: int = 30
    max_minutes: float = 10.0
    val_split: float = 0.2
    device: Optional[str] = None
    corruptions_per_case: int = 8
    snapshots: int = 3
    snapshot_minutes: float = 1.0
    batch_size: int = 32
    learning_rate: float = 1e-3
    from_scratch: bool = False
    seed: int = 0

    @classmethod
    def from_request(cls, request: Dict) -> "QCTrainOptions":
        """Validate request params; raise ``ValueError`` with a readable message on bad ones."""
        opts = cls(**request_values(cls, request))
        check_budget(opts)
        if opts.corruptions_per_case < 0 or opts.snapshots < 0 or opts.snapshot_minutes <= 0:
            raise ValueError("corruptions_per_case and snapshots must be >= 0 and snapshot_minutes > 0")
        if opts.corruptions_per_case == 0 and opts.snapshots == 0:
            raise ValueError("the QC set needs corruptions_per_case > 0 or snapshots > 0 (references alone are all perfect)")
        return opts


@dataclass
class QCTrainResult:
    published: bool
    best_val: Dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    history: List[Dict] = field(default_factory=list)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips, quarter turns and a gamma change: none of them changes slice Dice or MVSF."""
    if torch.rand(1, generator=gen).item() < 0.5:
        x = torch.flip(x, (-1,))
    if torch.rand(1, generator=gen).item() < 0.5:
        x = torch.flip(x, (-2,))
    k = int(torch.randint(0, 4, (1,), generator=gen).item())
    x = torch.rot90(x, k, (-2, -1)) if k else x
    gamma = float(torch.empty(1).uniform_(0.7, 1.4, generator=gen))
    x = x.clone()
    x[:, 0] = x[:, 0].clamp(0, 1) ** gamma
    return x


def evaluate_qc(model: QCNet, dataset: QCTrainingSet, device: str) -> Dict[str, float]:
    """Slice MAE of predicted Dice per checked class (and their mean) over every slice of ``dataset``."""
    model.eval()
    pairs = dataset.slices()
    errors = []
    for start in range(0, len(pairs), 256):
        x, y = dataset.inputs(pairs[start : start + 256])
        dice, _ = predict_slices(model, x, device)
        errors.append(np.abs(dice - y[:, : dice.shape[1]].numpy()))
    err = np.concatenate(errors) if errors else np.zeros((0, 4))
    out = {f"mae_{c}": float(err[:, c].mean()) for c in CHECKED_CLASSES} if len(err) else {}
    out["mae"] = float(err[:, list(CHECKED_CLASSES)].mean()) if len(err) else float("inf")
    return out


@dataclass
class QCSets:
    """The QC training and validation sets, their preprocessing and the segmentation models that fed them."""

    train: QCTrainingSet
    val: QCTrainingSet
    preprocess: PreprocessConfig
    models: List[Tuple[str, torch.nn.Module, Optional[CamPrior]]]  # (name, network, its CAM prior or None)


def prepare_qc_sets(items: List[Dict], options: QCTrainOptions, *, segmentation_checkpoint: Optional[str],
                    window: int, log: Callable[..., None]) -> QCSets:
    """Split subjects, prepare frames, train snapshots on the training subjects, build both variant sets."""
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pre = CardiacPreprocessor(PreprocessConfig())
    subjects = [it.get("subject") or it["image"] for it in items]
    groups = {s: it.get("group", "") for s, it in zip(subjects, items)}
    train_subjects, val_subjects = split_subjects(subjects, groups, options.val_split, options.seed)
    log("loading", images=len(items))
    cases = [c for it, s in zip(items, subjects) for c in prepare_cases(os.path.basename(it["image"]), s, it["image"], it["label"], pre)]
    models = []
    if segmentation_checkpoint and os.path.isfile(segmentation_checkpoint):
        models.append(("served", load_checkpoint(segmentation_checkpoint, device)[0],
                       load_prior(segmentation_checkpoint, device)))
    if options.snapshots:
        train_items = [it for it, s in zip(items, subjects) if s in train_subjects]
        plans = snapshot_plans(options.snapshots, np.random.default_rng(options.seed))
        models += [(name, model, None) for name, model in train_snapshots(train_items, plans, device=device, seed=options.seed,
                                  minutes_each=options.snapshot_minutes, log=log)]
    sets = []
    for part, seed in ((train_subjects, options.seed), (val_subjects, options.seed + 1000)):
        part_cases = [c for c in cases if c.subject in part]
        sets.append(build_training_set(part_cases, corruptions_per_case=options.corruptions_per_case, models=models,
                                       device=device, seed=seed, window=window, preprocessor=pre))
    return QCSets(sets[0], sets[1], pre.config, models)


def train_qc(items: List[Dict], checkpoint_path: str, options: QCTrainOptions, *,
             segmentation_checkpoint: Optional[str] = None, spec: Optional[QCSpec] = None,
             sets: Optional[QCSets] = None,
             log: Callable[..., None] = report) -> QCTrainResult:
    """Build the QC set from labelled frames, train the QC network, publish the best checkpoint.

    Args:
        items: ``{"image", "label", "subject", "group"}`` per labelled frame (labels are the references).
        checkpoint_path: where the served QC model lives.
        options: run options.
        segmentation_checkpoint: the served segmentation model, whose predictions join the QC set.
        spec: QC network architecture.
        sets: prebuilt sets (benchmarks reuse them); built from ``items`` otherwise.
        log: progress callback ``log(event, **fields)``.
    """
    start = time.time()
    torch.manual_seed(options.seed)
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    spec = spec or QCSpec()
    sets = sets or prepare_qc_sets(items, options, segmentation_checkpoint=segmentation_checkpoint, window=spec.window,
                                   log=log)
    train_set, val_set, pre_config = sets.train, sets.val, sets.preprocess
    model = spec.build().to(device)
    best = {"mae": float("inf")}
    served_ok = os.path.isfile(checkpoint_path) and not options.from_scratch
    if served_ok:
        try:
            served, _, _ = load_qc(checkpoint_path, device)
            if served.spec == spec:
                model.load_state_dict(served.state_dict())
            best = evaluate_qc(served, val_set, device)
        except Exception as e:  # a damaged checkpoint must not block retraining
            log("warning", message=f"served QC checkpoint unreadable, training from scratch: {e}")
            served_ok = False
    baseline = dict(best)
    rng = np.random.default_rng(options.seed)
    sampler = BalancedSampler(train_set, rng)
    log("start", train_slices=len(sampler), val_slices=len(val_set.slices()), sources=train_set.sources(),
        quality_bins=sampler.counts, device=device, served_val=baseline if served_ok else None)
    steps_per_epoch = max(1, math.ceil(len(sampler) / options.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(options.seed)
    budget_s = options.max_minutes * 60
    train_start = time.time()
    result = QCTrainResult(published=False)
    model.train()
    for epoch in range(1, options.max_epochs + 1):
        losses = []
        for step in range(steps_per_epoch):
            done = max((epoch - 1 + step / steps_per_epoch) / options.max_epochs, (time.time() - train_start) / budget_s)
            for group in optimizer.param_groups:
                group["lr"] = options.learning_rate * max(1 - min(done, 1.0), 0.01) ** 0.9
            x, y = train_set.inputs(sampler.draw(options.batch_size))
            pred = model(_augment(x, gen).to(device))
            loss = torch.nn.functional.mse_loss(pred, y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if time.time() - train_start >= budget_s:
                break
        val = evaluate_qc(model, val_set, device)
        model.train()
        improved = val["mae"] < best["mae"]
        if improved:
            best = val
            record = {"kind": "qc", "qc_spec": asdict(spec), "trained_at": time.time(), "epochs": epoch,
                      "train_slices": len(sampler), "val_slices": len(val_set.slices()), "val": val,
                      "metric": "mae", "score": val["mae"],
                      "sources": train_set.sources(), "options": asdict(options)}
            publish_qc(checkpoint_path, model, pre_config, record)
            result.published = True
        elapsed = time.time() - train_start
        entry = {"epoch": epoch, "max_epochs": options.max_epochs, "loss": float(np.mean(losses)), "val": val,
                 "best_val": best, "model": "qc", "metric": "mae", "score": val["mae"], "best_score": best["mae"], "published": improved, "elapsed_s": round(elapsed, 1), "max_minutes": options.max_minutes,
                 "percent": round(100 * min(1.0, max(epoch / options.max_epochs, elapsed / budget_s)), 1)}
        result.history.append(entry)
        log("epoch", **entry)
        if elapsed >= budget_s:
            break
    result.best_val, result.epochs, result.seconds = best, len(result.history), time.time() - start
    log("done", model="qc", metric="mae", published=result.published, best_val=best,
        best_score=best["mae"] if math.isfinite(best["mae"]) else None, epochs=result.epochs, seconds=round(result.seconds, 1),
        served_val=baseline if served_ok else None)
    return result
