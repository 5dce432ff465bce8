"""Segmentation training: the recipe the one training loop (``core.training``) runs for the LV/MYO/RV network.

Patches around the heart from labelled frames (weighted by the label's source), CMR augmentation, CE+Dice (or
MAE+Dice for noisy labels), validation by per-volume Dice on whole slices of held-out subjects.
"""

import math
import os
from dataclasses import asdict, replace
from typing import Dict, List, Optional

import numpy as np
import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.options import TrainOptions, option
from cmrassist_server.core.resume import numpy_rng_state, set_numpy_rng_state
from cmrassist_server.core.splits import split_subjects
from cmrassist_server.core.training import Log, TrainingRecipe, TrainResult, report, run_training
from cmrassist_server.imaging.preprocess import (
    CardiacPreprocessor,
    PreprocessConfig,
    class_map,
    crop_or_pad,
    undo_crop_or_pad,
)
from cmrassist_server.segmentation.augment import AugmentConfig, augment_batch
from cmrassist_server.segmentation.cam_prior import CamPrior
from cmrassist_server.segmentation.data import PatchSampler, PreparedCase, prepare_cases
from cmrassist_server.segmentation.losses import LOSSES, segmentation_loss
from cmrassist_server.segmentation.network import (
    NETWORKS,
    NetworkSpec,
    SegmentationModel,
    load_segmentation,
    publish_segmentation,
)
from CMRAssistCore.labels import SHORT_NAMES
from CMRAssistCore.measures import dice

#: What a segmentation training run can learn from (see ``SegmentationTrainOptions.labels``).
LABEL_CHOICES = ("final", "expert", "non_expert", "all", "consensus")


class SegmentationTrainOptions(TrainOptions):
    """Options of a segmentation run (request params of the ``segmentation`` train task); common ones in
    :class:`core.options.TrainOptions` (an epoch = as many patches as training slices).

    Args:
        network: ``unet`` or ``attention_unet``.
        loss: ``ce_dice``, ``mae_dice`` (noise-robust, for non-expert labels) or ``ce`` (cross-entropy alone).
        labels: which labels to learn from: ``final`` (the reviewed label of each image), ``expert`` or
            ``non_expert`` (that kind of annotator's versions), ``all`` (every annotator's version, weighted by
            expertise) or ``consensus`` (STAPLE consensus versions).
        expert_weight: sampling weight of slices labelled by experts.
        non_expert_weight: sampling weight of slices labelled by non-experts.
        propagated: also learn from labels propagated across cine frames (tag ``propagated``).
        propagated_weight: their sampling weight.
        cam_prior: give the network a class-activation map of a slice classifier as a second input channel
            (``cam_prior.py``; the slice-position model's, else a disease-group classifier's).
    """

    network: str = option("unet", choices=NETWORKS)
    loss: str = option("ce_dice", choices=LOSSES)
    labels: str = option("final", choices=LABEL_CHOICES)
    expert_weight: float = option(1.0, low=0, high=100)
    non_expert_weight: float = option(1.0, low=0, high=100)
    propagated: bool = option(False)
    propagated_weight: float = option(0.5, low=0, high=100)
    cam_prior: bool = option(False)

    def check(self) -> None:
        if self.expert_weight + self.non_expert_weight == 0:
            raise CMRAssistError(
                "expert_weight and non_expert_weight must be not both 0: at least one kind of label must count", 422
            )


@torch.no_grad()
def predict_stack(model: torch.nn.Module, inputs: np.ndarray, device: str, multiple: int = 16) -> np.ndarray:
    """Labels of preprocessed ``(slices, C, H, W)`` inputs (or a ``(slices, H, W)`` stack), whole slices padded
    to the network's stride."""
    was_training = model.training
    model.eval()
    image = inputs[:, None] if inputs.ndim == 3 else inputs
    h, w = image.shape[-2:]
    size = (int(math.ceil(h / multiple) * multiple), int(math.ceil(w / multiple) * multiple))
    window, box = crop_or_pad(image, (h / 2, w / 2), size)
    logits = torch.cat(
        [model(torch.from_numpy(window[i : i + 16]).to(device)).cpu() for i in range(0, len(window), 16)]
    )
    model.train(was_training)
    return undo_crop_or_pad(class_map(logits), box).numpy().astype(np.uint8)


@torch.no_grad()
def validate(model: torch.nn.Module, cases: List[PreparedCase], device: str, multiple: int = 16) -> Dict[str, float]:
    """Mean per-volume Dice per class (and their mean) on whole (padded) slices at the network spacing."""
    scores: Dict[int, List[float]] = {v: [] for v in SHORT_NAMES}
    for case in cases:
        pred, ref = predict_stack(model, case.inputs, device, multiple), case.label
        for v in SHORT_NAMES:
            scores[v].append(dice(pred, ref, v))
    out = {SHORT_NAMES[v]: float(np.mean(s)) for v, s in scores.items()}
    out["mean"] = float(np.mean(list(out.values())))
    return out


class SegmentationRecipe(TrainingRecipe):
    """The segmentation network's hooks for the training loop.

    Args:
        items: ``{"image", "label", "subject", "group", "weight"}`` per labelled frame (``weight`` optional).
        val_items: the labels to validate on (e.g. reviewed ``final`` labels while training on non-expert
            versions); ``items`` themselves when ``None``. Subjects are split over both lists together.
        checkpoint: where the served model lives (warm start, baseline, publication).
        options: run options.
        preprocess: preprocessing when training from scratch (a warm start keeps the served model's).
        augment: augmentation ranges.
        spec: architecture (``options.network`` with default capacity when omitted).
        prior: the CAM prior whose channel the network also takes (required when ``options.cam_prior``).
    """

    kind = "segmentation"
    metric = "mean"

    def __init__(
        self,
        items: List[Dict],
        checkpoint: str,
        options: SegmentationTrainOptions,
        *,
        val_items: Optional[List[Dict]] = None,
        preprocess: Optional[PreprocessConfig] = None,
        augment: Optional[AugmentConfig] = None,
        spec: Optional[NetworkSpec] = None,
        prior: Optional[CamPrior] = None,
    ):
        if options.cam_prior != (prior is not None):
            raise ValueError("options.cam_prior and the prior given must agree (see cam_training.training_prior)")
        self.items, self.val_items = items, items if val_items is None else val_items
        self.checkpoint, self.options, self.prior = checkpoint, options, prior
        self.pre = CardiacPreprocessor(preprocess)
        self.spec = replace(spec or NetworkSpec(name=options.network), in_channels=self.pre.config.input_count(prior))
        self.chosen = spec is not None or preprocess is not None  # the caller fixed the architecture
        self.augment = augment or AugmentConfig()
        self.served: Optional[SegmentationModel] = None

    def prepare(self, device: str, log: Log) -> None:
        self.device = device
        self.served = self.load_served(self.checkpoint, self.options, lambda p: load_segmentation(p, device), log)
        self._adopt_served()
        both = self.items + (self.val_items if self.val_items is not self.items else [])
        subjects = [it.get("subject") or it["image"] for it in both]
        groups = {s: it.get("group", "") for s, it in zip(subjects, both)}
        self.train_subjects, self.val_subjects = split_subjects(
            subjects, groups, self.options.val_split, self.options.seed
        )
        log("loading", images=len(both))
        self.train_cases = self._prepared(self.items, self.train_subjects, self.prior)
        self.val_cases = self._prepared(self.val_items, self.val_subjects, self.prior)
        self.sampler = PatchSampler(
            self.train_cases, self.pre.config.patch_size, np.random.default_rng(self.options.seed)
        )
        self.loss_fn = segmentation_loss(self.options.loss)
        self.generator = torch.Generator().manual_seed(self.options.seed)

    def _adopt_served(self) -> None:
        """A warm start keeps the served model's architecture and preprocessing (e.g. a shipped 2.5D model stays
        2.5D) when it is the network asked for with the same kind of prior; a caller's explicit choice must match."""
        served = self.served
        if served is None or served.spec.name != self.spec.name or (served.prior is None) != (self.prior is None):
            return
        if not self.chosen or served.spec == self.spec:
            self.spec, self.pre = served.spec, CardiacPreprocessor(served.preprocess)

    def _prepared(
        self, chosen: List[Dict], keep: set, prior: Optional[CamPrior], pre: Optional[CardiacPreprocessor] = None
    ) -> List[PreparedCase]:
        return [
            case
            for it in chosen
            if (it.get("subject") or it["image"]) in keep
            for case in prepare_cases(
                os.path.basename(it["image"]),
                it.get("subject") or it["image"],
                it["image"],
                it["label"],
                pre or self.pre,
                weight=float(it.get("weight", 1.0)),
                prior=prior,
            )
        ]

    def build(self) -> torch.nn.Module:
        same = self.served is not None and self.served.spec == self.spec
        network = self.served.network if self.served is not None else None
        return self.warm_started(self.spec.build().to(self.device), network, same)

    def served_val(self) -> Optional[Dict[str, float]]:
        if self.served is None:
            return None
        # The served model is scored on its own inputs (its preprocessing and prior) over the same validation frames.
        served = self.served
        if served.prior is None and self.prior is None and served.preprocess == self.pre.config:
            return validate(served.network, self.val_cases, self.device)
        cases = self._prepared(self.val_items, self.val_subjects, served.prior, CardiacPreprocessor(served.preprocess))
        return validate(served.network, cases, self.device)

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.sampler) / self.options.batch_size))

    def batch(self):
        image, label = self.sampler.batch(self.options.batch_size)
        return augment_batch(image, label, self.augment, self.generator)

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor:
        image, label = batch
        return self.loss_fn(model(image.to(self.device)), label[:, None].to(self.device))

    def validate(self, model: torch.nn.Module) -> Dict[str, float]:
        return validate(model, self.val_cases, self.device)

    def sizes(self) -> Dict[str, int]:
        return {"train_size": len(self.train_cases), "val_size": len(self.val_cases)}

    def details(self) -> Dict:
        return {
            "unit": "frames",
            "network": asdict(self.spec),
            "preprocess": asdict(self.pre.config),
            "prior": self.prior.describe() if self.prior is not None else None,
        }

    def rng_state(self) -> Dict:
        return {"sampler": numpy_rng_state(self.sampler.rng), "augment": self.generator.get_state()}

    def set_rng_state(self, state: Dict) -> None:
        set_numpy_rng_state(self.sampler.rng, state["sampler"])
        self.generator.set_state(state["augment"])

    def publish(self, model: torch.nn.Module, record: ModelRecord) -> None:
        publish_segmentation(self.checkpoint, model, self.spec, self.pre.config, record, prior=self.prior)


def train_segmentation(
    items: List[Dict],
    checkpoint: str,
    options: SegmentationTrainOptions,
    *,
    log: Log = report,
    state_path: Optional[str] = None,
    **recipe_args,
) -> TrainResult:
    """Train on labelled frames and publish each better validation checkpoint to ``checkpoint``.

    Args:
        items: labelled frames (see :class:`SegmentationRecipe`).
        checkpoint: where the served model lives.
        options: run options.
        log: progress callback ``log(event, **fields)``.
        state_path: where the run's state is kept after every epoch, and continued from (``core.resume``).
        recipe_args: ``val_items``, ``preprocess``, ``augment``, ``spec``, ``prior`` of :class:`SegmentationRecipe`.
    """
    recipe = SegmentationRecipe(items, checkpoint, options, **recipe_args)
    return run_training(recipe, options, checkpoint, log=log, state_path=state_path)
