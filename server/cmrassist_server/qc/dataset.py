"""The QC training set: segmentations of widely varied quality, with their true slice Dice and MVSF.

Sources, for every labelled frame (its ``final`` label is the reference):
- the reference itself (a few perfect examples);
- realistic corruptions of the reference (:mod:`.corruptions`);
- predictions of segmentation model snapshots of different capacity, data fraction and training length
  (and of the served model), which make the errors real models make.
Slices are then sampled evenly over bins of their true Dice, so that bad slices are seen as often as good ones.
"""

import os
import tempfile
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig, crop_or_pad
from cmrassist_server.qc.corruptions import corrupt
from cmrassist_server.qc.metrics import CHECKED_CLASSES, slice_dice_mvsf
from cmrassist_server.qc.network import qc_input, window_center
from cmrassist_server.segmentation.data import PreparedCase
from cmrassist_server.segmentation.network import NetworkSpec, SegmentationModel, load_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.segmentation.training import SegmentationTrainOptions, predict_stack, train_segmentation

DICE_BINS = 10


@dataclass
class QCVariant:
    """One checked segmentation of a prepared frame, cropped to the QC window, with its true slice figures."""

    case: int
    source: str
    center: Tuple[float, float]
    segmentation: np.ndarray  # (slices, window, window) uint8
    dice: np.ndarray  # (slices, classes)
    mvsf: np.ndarray  # (slices, classes)


@dataclass
class QCTrainingSet:
    """Variants of prepared frames; ``inputs`` builds network inputs for any (variant, slice) pairs."""

    cases: List[PreparedCase]
    variants: List[QCVariant] = field(default_factory=list)
    window: int = 128
    probs: Optional[List[np.ndarray]] = None  # per case, the segmentation network's (slices, 4, H, W) probabilities
    disagreement: Optional[List[np.ndarray]] = None  # per case, the passes' (slices, 4) disagreement

    def add(self, case_index: int, segmentation: np.ndarray, source: str) -> None:
        case = self.cases[case_index]
        dice, mvsf = slice_dice_mvsf(case.label, segmentation)
        center = window_center(segmentation)
        cropped, _ = crop_or_pad(segmentation.astype(np.uint8), center, (self.window, self.window))
        self.variants.append(QCVariant(case_index, source, center, cropped, dice, mvsf))

    def slices(self) -> List[Tuple[int, int]]:
        return [(v, z) for v, var in enumerate(self.variants) for z in range(var.dice.shape[0])]

    def present(self, v: int, z: int) -> List[int]:
        """The checked classes in the reference or the segmentation of slice ``z`` of variant ``v``."""
        var = self.variants[v]
        seg, ref = var.segmentation[z], self.cases[var.case].label[z]
        return [c for c in CHECKED_CLASSES if (ref == c).any() or (seg == c).any()]

    def slice_quality(self, pairs: Sequence[Tuple[int, int]]) -> np.ndarray:
        """Mean true Dice over the checked classes present in reference or segmentation (1 if none), per slice."""
        out = np.empty(len(pairs))
        for k, (v, z) in enumerate(pairs):
            present = self.present(v, z)
            out[k] = float(np.mean(self.variants[v].dice[z, present])) if present else 1.0
        return out

    def inputs(self, pairs: Sequence[Tuple[int, int]]) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Network inputs ``(N, channels, window, window)``, targets ``(N, 8)`` (Dice then MVSF per class) and,
        with the segmentation network's probabilities, the agreement features ``(N, 8)``."""
        xs, ys, fs = [], [], []
        c = self.window / 2
        for v, z in pairs:
            var = self.variants[v]
            image = _crop(self.cases[var.case].image[z : z + 1], var.center, self.window)
            probs = _crop(self.probs[var.case][z : z + 1], var.center, self.window) if self.probs is not None else None
            spread = self.disagreement[var.case][z : z + 1] if self.disagreement is not None else None
            x, f = qc_input(image, var.segmentation[z : z + 1], (c, c), self.window, probs, disagreement=spread)
            xs.append(x[0])
            fs.append(f[0] if f is not None else None)
            ys.append(np.concatenate([var.dice[z], var.mvsf[z]]))
        features = torch.stack(fs) if self.probs is not None else None
        return torch.stack(xs), torch.from_numpy(np.stack(ys).astype(np.float32)), features

    def sources(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for var in self.variants:
            kind = var.source.split(":")[0]
            out[kind] = out.get(kind, 0) + 1
        return out


def _crop(image: np.ndarray, center: Tuple[float, float], window: int) -> np.ndarray:
    return crop_or_pad(image, center, (window, window))[0]


class BalancedSampler:
    """Draws slices evenly over bins of true slice quality (mean Dice of the checked classes)."""

    def __init__(self, dataset: QCTrainingSet, rng: np.random.Generator, bins: int = DICE_BINS):
        self.pairs = dataset.slices()
        quality = dataset.slice_quality(self.pairs)
        index = np.minimum((quality * bins).astype(int), bins - 1)
        self.bins = [np.flatnonzero(index == b) for b in range(bins)]
        self.bins = [b for b in self.bins if len(b)]
        self.counts = {f"{b / bins:.1f}-{(b + 1) / bins:.1f}": int((index == b).sum()) for b in range(bins)}
        self.rng = rng

    def __len__(self) -> int:
        return len(self.pairs)

    def draw(self, size: int) -> List[Tuple[int, int]]:
        picks = self.rng.integers(0, len(self.bins), size)
        return [self.pairs[int(self.rng.choice(self.bins[b]))] for b in picks]


@dataclass(frozen=True)
class SnapshotPlan:
    """A weak segmentation model to train for the QC set: capacity, data fraction and epochs."""

    channels: Tuple[int, ...]
    fraction: float
    epochs: int

    @property
    def name(self) -> str:
        return f"snapshot:c{self.channels[0]}-f{self.fraction:.2f}-e{self.epochs}"


def snapshot_plans(count: int, rng: np.random.Generator) -> List[SnapshotPlan]:
    """``count`` different snapshot settings: small to full capacity, 10-50% of the data, 1-4 epochs."""
    capacities = [(4, 8, 16, 32, 64), (8, 16, 32, 64, 128), (16, 32, 64, 128, 256)]
    plans = []
    for k in range(count):
        plans.append(
            SnapshotPlan(
                channels=capacities[k % len(capacities)],
                fraction=float(rng.choice([0.1, 0.25, 0.5])),
                epochs=int(rng.choice([1, 2, 4])),
            )
        )
    return plans


def train_snapshots(
    items: List[Dict],
    plans: Sequence[SnapshotPlan],
    *,
    device: str,
    seed: int,
    minutes_each: float,
    log: Callable[..., None],
) -> List[Tuple[str, SegmentationModel]]:
    """Train each planned snapshot briefly on a fraction of ``items``; returns ``(name, model)`` pairs."""
    rng = np.random.default_rng(seed)
    subjects = sorted({it.get("subject") or it["image"] for it in items})
    models = []
    for k, plan in enumerate(plans):
        n = max(2, int(round(len(subjects) * plan.fraction)))
        chosen = set(rng.choice(subjects, size=min(n, len(subjects)), replace=False).tolist())
        subset = [it for it in items if (it.get("subject") or it["image"]) in chosen]
        with tempfile.TemporaryDirectory(prefix="cmrassist-snapshot-") as folder:
            path = os.path.join(folder, "snapshot.pt")
            options = SegmentationTrainOptions(
                max_epochs=plan.epochs,
                max_minutes=minutes_each,
                val_split=0.2,
                device=device,
                from_scratch=True,
                seed=seed + k,
            )
            train_segmentation(
                subset, path, options, spec=NetworkSpec(channels=plan.channels), log=lambda *a, **f: None
            )
            model = load_segmentation(path, device).network
        log("loading", stage="snapshot", name=plan.name, subjects=len(chosen), done=k + 1, total=len(plans))
        models.append(
            (plan.name, SegmentationModel(model, NetworkSpec(channels=plan.channels), PreprocessConfig(), {}))
        )
    return models


def build_training_set(
    cases: List[PreparedCase],
    *,
    corruptions_per_case: int,
    models: Sequence[Tuple[str, SegmentationModel]],
    device: str,
    seed: int,
    window: int = 128,
    include_reference: bool = True,
    preprocessor: Optional[CardiacPreprocessor] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    view: Optional[SegmentationPredictor] = None,
    views: Optional[Callable[[PreparedCase], SegmentationPredictor]] = None,
    disagreement: bool = False,
) -> QCTrainingSet:
    """Variants of every case: its reference, ``corruptions_per_case`` corruptions and each model's prediction.

    Args:
        cases: prepared labelled frames (image and reference at the preprocessing spacing).
        corruptions_per_case: corrupted copies of each reference.
        models: ``(name, segmentation model)`` whose predictions are added (each with its own input channels).
        device: where the models run.
        seed: random seed of the corruptions.
        window: QC window edge in pixels.
        include_reference: add the unchanged reference as one variant.
        preprocessor: the cases' preprocessing (adds a model's prior channel).
        progress: ``progress(done, total)`` per case.
        view: the segmentation predictor whose view (``segmentation/views.py``) the QC network also takes.
        views: per case, the predictor whose view the QC takes (instead of ``view``): out-of-fold training gives
            each patient the fold models that never saw it.
        disagreement: keep the views' disagreement too (``QCSpec.disagreement``).
    """
    rng = np.random.default_rng(seed)
    pre = preprocessor or CardiacPreprocessor()
    dataset = QCTrainingSet(cases=cases, window=window)
    if view is not None or views is not None:
        seen = [(views(case) if views else view).stack_view(case.image) for case in cases]
        dataset.probs = [v.probs for v in seen]
        dataset.disagreement = [v.disagreement for v in seen] if disagreement else None
    for i, case in enumerate(cases):
        if include_reference:
            dataset.add(i, case.label, "reference")
        for _ in range(corruptions_per_case):
            seg, kind = corrupt(case.label, rng)
            dataset.add(i, seg, "corruption:" + kind)
        for name, model in models:
            inputs = CardiacPreprocessor(replace(pre.config, neighbour_slices=model.preprocess.neighbour_slices))
            dataset.add(i, predict_stack(model.network, inputs.input_channels(case.image, model.prior), device), name)
        if progress:
            progress(i + 1, len(cases))
    return dataset
