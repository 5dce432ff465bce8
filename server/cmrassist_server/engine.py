"""Training of the slice-wise segmentation network within an epoch and time budget.

The best validation checkpoint of a run is published atomically, and only when it beats the model already
served (evaluated on the same validation images), so a crash or a poor run never degrades what is served.
Progress goes to stdout as ``CMRASSIST_PROGRESS {json}`` lines, which MONAI Label shows in ``GET /train/``.
"""

import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from CMRAssistCore.labels import SHORT_NAMES

from .augment import AugmentConfig, augment_batch
from .cam_prior import CamPrior, load_prior
from .imageio import Orientation, frames_of, read_image
from .losses import LOSSES, segmentation_loss
from .options import check_budget, request_values
from .network import ModelRecord, NetworkSpec, load_checkpoint, publish_checkpoint
from .preprocess import CardiacPreprocessor, PreprocessConfig, class_map, crop_or_pad, undo_crop_or_pad

PROGRESS_PREFIX = "CMRASSIST_PROGRESS "


@dataclass(frozen=True)
class TrainOptions:
    """Options of one training run (request params of the ``segmentation`` train task).

    Args:
        max_epochs: epochs at most (an epoch = as many patches as training slices).
        max_minutes: wall-clock budget; training stops after the epoch that passes it.
        val_split: fraction of subjects held out for validation (at least one subject).
        device: ``cpu`` or ``cuda``; CUDA when present by default.
        network: ``unet`` or ``attention_unet``.
        batch_size: patches per step.
        learning_rate: initial Adam learning rate (decays polynomially over the budget).
        from_scratch: ignore the served model's weights.
        seed: random seed for the split, sampling and augmentation.
        loss: ``ce_dice`` or ``mae_dice`` (noise-robust, for non-expert labels).
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

    max_epochs: int = 50
    max_minutes: float = 10.0
    val_split: float = 0.2
    device: Optional[str] = None
    network: str = "unet"
    batch_size: int = 16
    learning_rate: float = 2e-3
    from_scratch: bool = False
    seed: int = 0
    loss: str = "ce_dice"
    labels: str = "final"
    expert_weight: float = 1.0
    non_expert_weight: float = 1.0
    propagated: bool = False
    propagated_weight: float = 0.5
    cam_prior: bool = False

    @classmethod
    def from_request(cls, request: Dict) -> "TrainOptions":
        """Validate request params; raise ``ValueError`` with a readable message on bad ones."""
        opts = cls(**request_values(cls, request))
        check_budget(opts)
        NetworkSpec(name=opts.network).build()  # raises on unknown names
        if opts.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, not {opts.loss!r}")
        if opts.labels not in LABEL_CHOICES:
            raise ValueError(f"labels must be one of {list(LABEL_CHOICES)}, not {opts.labels!r}")
        weights = (opts.expert_weight, opts.non_expert_weight, opts.propagated_weight)
        if min(weights) < 0 or opts.expert_weight + opts.non_expert_weight == 0:
            raise ValueError("label weights must be >= 0, and expert_weight and non_expert_weight not both 0")
        return opts


#: What a segmentation training run can learn from (see ``TrainOptions.labels``).
LABEL_CHOICES = ("final", "expert", "non_expert", "all", "consensus")


@dataclass
class PreparedCase:
    """One labelled frame, preprocessed once: ``(slices, H, W)`` image and label at the network spacing.

    ``inputs`` is what the network sees, ``(slices, C, H, W)``: the image and, with a prior, its channel.
    """

    key: str
    subject: str
    image: np.ndarray
    label: np.ndarray
    heart_center: Tuple[float, float]
    weight: float = 1.0  # sampling weight (by the label's expertise or source)
    inputs: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.inputs is None:
            self.inputs = self.image[:, None]


def prepare_cases(key: str, subject: str, image_path: str, label_path: str, pre: CardiacPreprocessor, *,
                  weight: float = 1.0, prior=None) -> List[PreparedCase]:
    """The labelled frames of one datastore item, preprocessed: a 3D frame, or each labelled frame of a cine.

    ``prior``: adds its channel to the inputs (see ``CardiacPreprocessor.input_channels``).

    A 3D label on a 4D cine gives nothing: it does not say which frame it belongs to.
    """
    image = read_image(image_path)
    orientation = Orientation.of(image)
    frames = frames_of(image)
    labels = sitk.GetArrayFromImage(read_image(label_path))
    if image.GetDimension() == 3:
        pairs = [(key, frames[0], labels)]
    elif labels.ndim == 4:
        pairs = [(f"{key}#frame{t + 1}", frames[t], labels[t]) for t in range(len(frames)) if labels[t].any()]
    else:
        pairs = []
    cases = []
    for case_key, frame, label_zyx in pairs:
        stack, _ = pre.resampled_stack(frame, orientation)
        label = pre.resampled_label(label_zyx, orientation)
        fg = np.argwhere(label > 0)
        center = tuple(fg[:, 1:].mean(0)) if len(fg) else (label.shape[1] / 2, label.shape[2] / 2)
        cases.append(PreparedCase(key=case_key, subject=subject, image=stack, label=label, heart_center=center,  # type: ignore[arg-type]
                                  weight=weight, inputs=pre.input_channels(stack, prior)))
    return cases


def split_subjects(subjects: Sequence[str], groups: Dict[str, str], val_split: float, seed: int) -> Tuple[set, set]:
    """Split subjects so that every group (e.g. ACDC disease group) appears in both parts where it can."""
    rng = random.Random(seed)
    by_group: Dict[str, List[str]] = {}
    for s in sorted(set(subjects)):
        by_group.setdefault(groups.get(s, ""), []).append(s)
    val: set = set()
    for members in by_group.values():
        rng.shuffle(members)
        n = int(round(len(members) * val_split))
        if len(members) >= 2:
            n = min(max(n, 1), len(members) - 1)
        val.update(members[:n])
    if not val:
        val = {sorted(set(subjects))[-1]}
    train = set(subjects) - val
    if not train:
        raise ValueError("need labelled images of at least two subjects to train and validate")
    return train, val


class PatchSampler:
    """Random training patches centred near the heart (jittered), sometimes anywhere in the image."""

    def __init__(self, cases: List[PreparedCase], patch: int, rng: np.random.Generator, p_anywhere: float = 0.25):
        self.cases = cases
        self.index = [(c, z) for c, case in enumerate(cases) for z in range(case.image.shape[0])]
        weights = np.array([cases[c].weight for c, _ in self.index], dtype=np.float64)
        # Slices drawn in proportion to their label's weight (uniform when all weights are equal).
        self.p = weights / weights.sum() if len(weights) and weights.sum() > 0 and np.ptp(weights) > 0 else None
        self.patch = patch
        self.rng = rng
        self.p_anywhere = p_anywhere

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        if self.p is not None:
            picks = self.rng.choice(len(self.index), size, p=self.p)
        else:
            picks = self.rng.integers(0, len(self.index), size)
        for i in picks:
            c, z = self.index[i]
            case = self.cases[c]
            h, w = case.image.shape[1:]
            if self.rng.random() < self.p_anywhere:
                center = (self.rng.uniform(0, h), self.rng.uniform(0, w))
            else:
                j = self.patch / 4
                center = (case.heart_center[0] + self.rng.uniform(-j, j), case.heart_center[1] + self.rng.uniform(-j, j))
            img, _ = crop_or_pad(case.inputs[z], center, (self.patch, self.patch))
            lab, _ = crop_or_pad(case.label[z], center, (self.patch, self.patch))
            images.append(img)
            labels.append(lab)
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels).astype(np.int64))


@torch.no_grad()
def predict_stack(model: torch.nn.Module, inputs: np.ndarray, device: str, multiple: int = 16) -> np.ndarray:
    """Labels of preprocessed ``(slices, C, H, W)`` inputs (or a ``(slices, H, W)`` stack), whole slices padded
    to the network's stride."""
    was_training = model.training
    model.eval()
    image = inputs[:, None] if inputs.ndim == 3 else inputs
    h, w = image.shape[-2:]
    size = (int(math.ceil(h / multiple) * multiple), int(math.ceil(w / multiple) * multiple))
    center = (h / 2, w / 2)
    window, box = crop_or_pad(image, center, size)
    logits = torch.cat([model(torch.from_numpy(window[i : i + 16]).to(device)).cpu()
                        for i in range(0, len(window), 16)])
    model.train(was_training)
    return undo_crop_or_pad(class_map(logits), box).numpy().astype(np.uint8)


@torch.no_grad()
def validate(model: torch.nn.Module, cases: List[PreparedCase], device: str, multiple: int = 16) -> Dict[str, float]:
    """Mean per-volume Dice per class on whole (padded) slices at the network spacing."""
    model.eval()
    scores: Dict[int, List[float]] = {v: [] for v in SHORT_NAMES}
    for case in cases:
        pred, ref = predict_stack(model, case.inputs, device, multiple), case.label
        for v in SHORT_NAMES:
            p, r = pred == v, ref == v
            denom = p.sum() + r.sum()
            scores[v].append(1.0 if denom == 0 else 2.0 * np.logical_and(p, r).sum() / denom)
    model.train()
    out = {SHORT_NAMES[v]: float(np.mean(s)) for v, s in scores.items()}
    out["mean"] = float(np.mean(list(out.values())))
    return out


def _remove_partial_files(checkpoint_path: str) -> None:
    """Drop half-written files a killed run may have left (the served checkpoint itself is never partial)."""
    folder = os.path.dirname(os.path.abspath(checkpoint_path))
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith("partial-"):
                os.remove(os.path.join(folder, name))


def history_path(checkpoint_path: str) -> str:
    return os.path.splitext(checkpoint_path)[0] + ".history.json"


def write_history(checkpoint_path: str, history: List[Dict]) -> None:
    """Per-epoch loss and validation Dice of the latest run, beside the checkpoint (for curves and the UI)."""
    os.makedirs(os.path.dirname(os.path.abspath(checkpoint_path)), exist_ok=True)
    with open(history_path(checkpoint_path), "w") as f:
        json.dump(history, f, indent=1)


def report(event: str, **fields) -> None:
    print(PROGRESS_PREFIX + json.dumps({"event": event, **fields}), flush=True)
    sys.stdout.flush()


@dataclass
class TrainResult:
    published: bool
    best_val: Dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    history: List[Dict] = field(default_factory=list)


def train_segmentation(
    items: List[Dict],
    checkpoint_path: str,
    options: TrainOptions,
    *,
    preprocess: Optional[PreprocessConfig] = None,
    augment: Optional[AugmentConfig] = None,
    spec: Optional[NetworkSpec] = None,
    val_items: Optional[List[Dict]] = None,
    prior: Optional[CamPrior] = None,
    log: Callable[..., None] = report,
) -> TrainResult:
    """Train on labelled frames and publish the best validation checkpoint to ``checkpoint_path``.

    Args:
        items: ``{"image": path, "label": path, "subject": str, "group": str, "weight": float}`` per labelled
            frame (``weight`` optional, 1 by default).
        checkpoint_path: where the served model lives.
        options: run options.
        preprocess: preprocessing (the served model's when fine-tuning it).
        augment: augmentation ranges.
        spec: network architecture (``options.network`` with default capacity when omitted).
        val_items: the labels to validate on (e.g. reviewed ``final`` labels while training on non-expert
            versions); ``items`` themselves by default. Subjects are split over both lists together.
        prior: the CAM prior whose channel the network also takes (required when ``options.cam_prior``); it is
            saved inside the published checkpoint.
        log: progress callback ``log(event, **fields)``.
    """
    if options.cam_prior != (prior is not None):
        raise ValueError("options.cam_prior and the prior given must agree (see cam_training.training_prior)")
    start = time.time()
    _remove_partial_files(checkpoint_path)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    spec = replace(spec or NetworkSpec(name=options.network), in_channels=2 if prior is not None else 1)
    model = spec.build().to(device)
    served_ok = os.path.isfile(checkpoint_path) and not options.from_scratch
    if served_ok:
        try:
            served, served_spec, served_pre, _ = load_checkpoint(checkpoint_path, device)
            served_prior = load_prior(checkpoint_path, device)
        except Exception as e:  # a damaged checkpoint must not block retraining
            log("warning", message=f"served checkpoint unreadable, training from scratch: {e}")
            served_ok = False
    if served_ok and served_spec == spec:
        model.load_state_dict(served.state_dict())
        preprocess = served_pre
    pre = CardiacPreprocessor(preprocess)

    val_items = items if val_items is None else val_items
    subject_of = [it.get("subject") or it["image"] for it in items + val_items]
    groups = {s: it.get("group", "") for s, it in zip(subject_of, items + val_items)}
    train_subjects, val_subjects = split_subjects(subject_of, groups, options.val_split, options.seed)
    log("loading", images=len(items) + (len(val_items) if val_items is not items else 0))

    def prepared(chosen: List[Dict], keep: set, with_prior: Optional[CamPrior]) -> List[PreparedCase]:
        return [case for it in chosen if (it.get("subject") or it["image"]) in keep
                for case in prepare_cases(os.path.basename(it["image"]), it.get("subject") or it["image"], it["image"],
                                          it["label"], pre, weight=float(it.get("weight", 1.0)), prior=with_prior)]

    train_cases = prepared(items, train_subjects, prior)
    val_cases = prepared(val_items, val_subjects, prior)
    if served_ok:
        # The served model is scored on its own inputs (its own prior, or none) over the same validation frames.
        same_inputs = served_prior is None and prior is None
        best = validate(served, val_cases if same_inputs else prepared(val_items, val_subjects, served_prior), device)
    else:
        best = {"mean": -1.0}
    baseline = dict(best)
    log("start", train_images=len(train_cases), val_images=len(val_cases), device=device,
        served_val=baseline if served_ok else None)

    sampler = PatchSampler(train_cases, pre.config.patch_size, rng)
    steps_per_epoch = max(1, math.ceil(len(sampler) / options.batch_size))
    loss_fn = segmentation_loss(options.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    aug = augment or AugmentConfig()
    gen = torch.Generator().manual_seed(options.seed)
    budget_s = options.max_minutes * 60
    result = TrainResult(published=False)
    model.train()
    for epoch in range(1, options.max_epochs + 1):
        losses = []
        for step in range(steps_per_epoch):
            done = max((epoch - 1 + step / steps_per_epoch) / options.max_epochs, (time.time() - start) / budget_s)
            for group in optimizer.param_groups:
                group["lr"] = options.learning_rate * max(1 - min(done, 1.0), 0.01) ** 0.9  # poly decay to 1%
            image, label = sampler.batch(options.batch_size)
            image, label = augment_batch(image, label, aug, gen)
            logits = model(image.to(device))
            loss = loss_fn(logits, label[:, None].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        val = validate(model, val_cases, device)
        improved = val["mean"] > best["mean"]
        if improved:
            best = val
            record = ModelRecord(network=asdict(spec), preprocess=asdict(pre.config), epochs=epoch,
                                 train_images=len(train_cases), val_images=len(val_cases), val=val, score=val["mean"],
                                 options=asdict(options), prior=prior.describe() if prior is not None else None)
            publish_checkpoint(checkpoint_path, model, spec, pre.config, record,
                               prior=prior.state() if prior is not None else None)
            result.published = True
        elapsed = time.time() - start
        entry = {"epoch": epoch, "max_epochs": options.max_epochs, "loss": float(np.mean(losses)),
                 "model": "segmentation", "metric": "mean", "val": val, "best_val": best, "score": val["mean"],
                 "best_score": best["mean"], "published": improved, "elapsed_s": round(elapsed, 1),
                 "max_minutes": options.max_minutes,
                 "percent": round(100 * min(1.0, max(epoch / options.max_epochs, elapsed / budget_s)), 1)}
        result.history.append(entry)
        write_history(checkpoint_path, result.history)
        log("epoch", **entry)
        if elapsed >= budget_s:
            break
    result.best_val, result.epochs, result.seconds = best, len(result.history), time.time() - start
    log("done", model="segmentation", metric="mean", published=result.published, best_val=best, best_score=best["mean"], epochs=result.epochs, seconds=round(result.seconds, 1),
        served_val=baseline if served_ok else None)
    return result
