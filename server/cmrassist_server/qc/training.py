"""QC training: the recipe the one training loop (``core.training``) runs for the QC network (MSE on slice
Dice and MVSF of varied segmentations: references, corruptions, weak snapshots and the served model's predictions).
"""

import math
import os
from dataclasses import asdict, dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from cmrassist_server.core.checkpoints import ModelRecord, file_sha256
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.options import TrainOptions, option
from cmrassist_server.core.resume import numpy_rng_state, set_numpy_rng_state
from cmrassist_server.core.splits import split_subjects
from cmrassist_server.core.training import Log, TrainingRecipe, TrainResult, report, run_training
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig
from cmrassist_server.qc.dataset import (
    BalancedSampler,
    QCTrainingSet,
    build_training_set,
    snapshot_plans,
    train_snapshots,
)
from cmrassist_server.qc.metrics import CHECKED_CLASSES
from cmrassist_server.qc.network import QCNet, QCSpec, load_qc, predict_slices, publish_qc
from cmrassist_server.segmentation.data import prepare_cases
from cmrassist_server.segmentation.network import SegmentationModel, load_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor


class QCTrainOptions(TrainOptions):
    """Options of a QC run (request params of the ``qc`` train task); common ones in :class:`core.options.TrainOptions`
    (an epoch = as many slices as the training set holds, drawn balanced over quality bins).

    Args:
        corruptions_per_case: corrupted copies of each reference frame.
        snapshots: weak segmentation models trained to add real model errors (0 for none).
        snapshot_minutes: budget of each snapshot (preparation, outside ``max_minutes``).
        model_inputs: give the QC network the served segmentation network's probabilities and their agreement
            with the checked label (``qc/model_view.py``), when a segmentation model is served.
        disagreement: with ``model_inputs``, also how much the segmentation passes (flips, an ensemble's members)
            disagree per slice and class.
    """

    max_epochs: int = option(30, low=1, high=100000)
    batch_size: int = option(32, low=1, high=1024)
    learning_rate: float = option(1e-3, low=0, high=1.0)
    corruptions_per_case: int = option(8, low=0, high=100)
    snapshots: int = option(3, low=0, high=20)
    snapshot_minutes: float = option(1.0, low=0, high=24 * 60, open_low=True)
    model_inputs: bool = option(True)
    disagreement: bool = option(False)

    def check(self) -> None:
        if self.corruptions_per_case == 0 and self.snapshots == 0:
            raise CMRAssistError(
                "the QC set needs corruptions_per_case > 0 or snapshots > 0 (references alone are all perfect)", 422
            )


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
        x, y, f = dataset.inputs(pairs[start : start + 256])
        # A model without the segmentation network's view (e.g. the served one) is scored on the inputs it takes.
        x, f = x[:, : model.spec.in_channels], (f if model.spec.n_features else None)
        dice, _ = predict_slices(model, x, device, f)
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
    models: List[Tuple[str, SegmentationModel]]


def prepare_qc_sets(
    items: List[Dict],
    options: QCTrainOptions,
    *,
    segmentation_checkpoint: Optional[str],
    window: int,
    log: Callable[..., None],
) -> QCSets:
    """Split subjects, prepare frames, train snapshots on the training subjects, build both variant sets."""
    device = default_device(options.device)
    pre = CardiacPreprocessor(PreprocessConfig())
    subjects = [it.get("subject") or it["image"] for it in items]
    groups = {s: it.get("group", "") for s, it in zip(subjects, items)}
    train_subjects, val_subjects = split_subjects(subjects, groups, options.val_split, options.seed)
    log("loading", images=len(items))
    cases = [
        c
        for it, s in zip(items, subjects)
        for c in prepare_cases(os.path.basename(it["image"]), s, it["image"], it["label"], pre)
    ]
    models = []
    if segmentation_checkpoint and os.path.isfile(segmentation_checkpoint):
        models.append(("served", load_segmentation(segmentation_checkpoint, device)))
    # The QC's view is the served model's own segmentation pass, exactly as one-click runs it.
    view = SegmentationPredictor(segmentation_checkpoint, device=device) if models and options.model_inputs else None
    if options.snapshots:
        train_items = [it for it, s in zip(items, subjects) if s in train_subjects]
        plans = snapshot_plans(options.snapshots, np.random.default_rng(options.seed))
        models += train_snapshots(
            train_items, plans, device=device, seed=options.seed, minutes_each=options.snapshot_minutes, log=log
        )
    sets = []
    for part, seed in ((train_subjects, options.seed), (val_subjects, options.seed + 1000)):
        part_cases = [c for c in cases if c.subject in part]
        sets.append(
            build_training_set(
                part_cases,
                corruptions_per_case=options.corruptions_per_case,
                models=models,
                device=device,
                seed=seed,
                window=window,
                preprocessor=pre,
                view=view,
                disagreement=options.disagreement,
            )
        )
    return QCSets(sets[0], sets[1], pre.config, models)


class QCRecipe(TrainingRecipe):
    """The QC network's hooks for the training loop.

    Args:
        items: ``{"image", "label", "subject", "group"}`` per labelled frame (labels are the references).
        checkpoint: where the served QC model lives.
        options: run options.
        segmentation_checkpoint: the served segmentation model, whose predictions join the QC set.
        spec: QC network architecture.
        sets: prebuilt sets (benchmarks reuse them); built from ``items`` otherwise.
    """

    kind = "qc"
    metric = "mae"
    higher_is_better = False

    def __init__(
        self,
        items: List[Dict],
        checkpoint: str,
        options: QCTrainOptions,
        *,
        segmentation_checkpoint: Optional[str] = None,
        spec: Optional[QCSpec] = None,
        sets: Optional[QCSets] = None,
    ):
        self.items, self.checkpoint, self.options = items, checkpoint, options
        self.segmentation_checkpoint, self.spec, self.sets = segmentation_checkpoint, spec or QCSpec(), sets
        self.served: Optional[QCNet] = None

    def prepare(self, device: str, log: Log) -> None:
        self.device = device
        if self.sets is None:
            self.sets = prepare_qc_sets(
                self.items,
                self.options,
                segmentation_checkpoint=self.segmentation_checkpoint,
                window=self.spec.window,
                log=log,
            )
        self.served = self.load_served(self.checkpoint, self.options, lambda p: load_qc(p, device).network, log)
        self.sampler = BalancedSampler(self.sets.train, np.random.default_rng(self.options.seed))
        self.generator = torch.Generator().manual_seed(self.options.seed)

    def build(self) -> torch.nn.Module:
        train = self.sets.train
        self.spec = replace(
            self.spec, model_inputs=train.probs is not None, disagreement=train.disagreement is not None
        )
        same = self.served is not None and self.served.spec == self.spec
        return self.warm_started(self.spec.build().to(self.device), self.served, same)

    def served_val(self) -> Optional[Dict[str, float]]:
        if self.served is None:
            return None
        if self.served.spec.model_inputs and self.served.spec.view != self.spec.view:
            # Trained on another view (the whole-slice one, before issue 23): these inputs would misjudge it, so it
            # sets no bar, and the first model trained on today's view replaces it.
            return None
        return evaluate_qc(self.served, self.sets.val, self.device)

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.sampler) / self.options.batch_size))

    def batch(self):
        return self.sets.train.inputs(self.sampler.draw(self.options.batch_size))

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor:
        x, y, features = batch
        features = features.to(self.device) if features is not None else None
        prediction = model(_augment(x, self.generator).to(self.device), features)
        return torch.nn.functional.mse_loss(prediction, y.to(self.device))

    def validate(self, model: torch.nn.Module) -> Dict[str, float]:
        return evaluate_qc(model, self.sets.val, self.device)

    def sizes(self) -> Dict[str, int]:
        return {"train_size": len(self.sampler), "val_size": len(self.sets.val.slices())}

    def describe(self) -> Dict:
        return {"sources": self.sets.train.sources(), "quality_bins": self.sampler.counts}

    def details(self) -> Dict:
        view = self.segmentation_checkpoint if self.spec.model_inputs else None
        return {
            "unit": "slices",
            "qc_spec": asdict(self.spec),
            "sources": self.sets.train.sources(),
            "segmentation_view_sha256": file_sha256(view) if view else None,
        }

    def rng_state(self) -> Dict:
        return {"sampler": numpy_rng_state(self.sampler.rng), "augment": self.generator.get_state()}

    def set_rng_state(self, state: Dict) -> None:
        set_numpy_rng_state(self.sampler.rng, state["sampler"])
        self.generator.set_state(state["augment"])

    def publish(self, model: torch.nn.Module, record: ModelRecord) -> None:
        publish_qc(self.checkpoint, model, self.sets.preprocess, record)


def train_qc(
    items: List[Dict],
    checkpoint: str,
    options: QCTrainOptions,
    *,
    log: Log = report,
    state_path: Optional[str] = None,
    **recipe_args,
) -> TrainResult:
    """Build the QC set from labelled frames, train the QC network, publish each better checkpoint.

    Args:
        items: labelled frames (see :class:`QCRecipe`).
        checkpoint: where the served QC model lives.
        options: run options.
        log: progress callback ``log(event, **fields)``.
        state_path: where the run's state is kept after every epoch, and continued from (``core.resume``).
        recipe_args: ``segmentation_checkpoint``, ``spec``, ``sets`` of :class:`QCRecipe`.
    """
    recipe = QCRecipe(items, checkpoint, options, **recipe_args)
    return run_training(recipe, options, checkpoint, log=log, state_path=state_path)
