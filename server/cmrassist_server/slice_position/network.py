"""The slice-position classifier: is a short-axis slice too basal, in the LV, or too apical?

Input per slice: the slice and its two neighbours in the stack (2.5D: the slice's place in the stack shows in
how its neighbours look), a 192 mm square around the image centre at 3 mm, plus the slice's relative place in
the stack. Output: three class logits and a continuous position (0 at the basal cut point, 1 at the apical one,
below 0 above the base, above 1 beyond the apex).
"""

import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

from cmrassist_server.core import checkpoints
from cmrassist_server.core.checkpoints import ModelRecord, ServedModel
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import Orientation, frames_of
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, PreprocessConfig, crop_or_pad

POSITIONS: Tuple[str, ...] = ("too_basal", "in_lv", "too_apical")
#: Checkpoint kinds of this network: the slice-position model, and the same network on other slice classes
#: (the disease-group classifier a CAM prior falls back on).
KINDS = ("slice_position", "slice_classifier")


@dataclass(frozen=True)
class PositionSpec:
    """Architecture and input of the slice-position network.

    Args:
        channels: feature maps of the strided convolution stages.
        window: input edge in pixels at ``spacing_mm`` (64 at 3 mm = 192 mm, both ventricles and the atria).
        spacing_mm: in-plane spacing the network sees.
        classes: the slice classes (the same network classifies other per-slice targets, e.g. the ACDC disease
            group a CAM prior is taken from).
    """

    channels: Tuple[int, ...] = (16, 32, 64, 128)
    window: int = 64
    spacing_mm: float = 3.0
    classes: Tuple[str, ...] = POSITIONS

    def build(self) -> "PositionNet":
        return PositionNet(self)


class PositionNet(nn.Module):
    """Strided conv stages and global pooling, then a head that also sees the relative place in the stack.

    ``forward(x, place)`` with ``x`` ``(N, 3, window, window)`` and ``place`` ``(N, 2)``
    returns ``(N, len(classes) + 1)``: the class logits, then the continuous position.
    """

    def __init__(self, spec: PositionSpec):
        super().__init__()
        self.spec = spec
        layers, c_in = [], 3
        for c in spec.channels:
            # Group norm: no running statistics, so a model trained for a few hundred steps evaluates as it trained.
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1),
                nn.GroupNorm(8, c),
                nn.LeakyReLU(0.1),
                nn.Conv2d(c, c, 3, padding=1),
                nn.GroupNorm(8, c),
                nn.LeakyReLU(0.1),
            ]
            c_in = c
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c_in + 2, 64), nn.LeakyReLU(0.1), nn.Linear(64, len(spec.classes) + 1))

    def forward(self, x: torch.Tensor, place: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.features(x), place], dim=1))


def stack_inputs(stack: np.ndarray, spec: PositionSpec) -> Tuple[torch.Tensor, torch.Tensor]:
    """Network inputs for every slice of one normalised, resampled ``(slices, H, W)`` stack.

    Returns ``(x, place)``: ``x`` ``(slices, 3, window, window)`` (previous, this, next slice; zeros past the
    stack's ends) and ``place`` ``(slices, 2)`` (relative index 0..1 and stack length / 20).
    """
    n, h, w = stack.shape
    window, _ = crop_or_pad(stack.astype(np.float32), (h / 2, w / 2), (spec.window, spec.window))
    padded = np.concatenate([np.zeros_like(window[:1]), window, np.zeros_like(window[:1])])
    x = np.stack([padded[:-2], padded[1:-1], padded[2:]], axis=1)
    index = np.arange(n, dtype=np.float32)
    place = np.stack([index / max(n - 1, 1), np.full(n, n / 20.0, np.float32)], axis=1)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(place.astype(np.float32))


def frame_stack(image: sitk.Image, spec: PositionSpec, frame: int = 0) -> np.ndarray:
    """One frame of an image as the canonical, normalised ``(slices, H, W)`` stack at ``spec.spacing_mm``."""
    pre = CardiacPreprocessor(PreprocessConfig(spacing_mm=spec.spacing_mm))
    stack, _ = pre.resampled_stack(frames_of(image)[frame], Orientation.of(image))
    return stack


def publish_position(path: str, model: PositionNet, record: ModelRecord) -> None:
    """Publish a slice classifier through the one checkpoint format."""
    checkpoints.publish(path, model, record, spec=asdict(model.spec))


def load_position(path: str, device: str = "cpu") -> Tuple[PositionNet, Dict[str, Any]]:
    """A published slice classifier (eval mode) and its record.

    Raises:
        CMRAssistError (409): unreadable, or not a slice classifier.
    """
    ckpt = checkpoints.load(path, device)
    if ckpt.kind not in KINDS:
        raise CMRAssistError(
            f"model file {os.path.basename(path)!r} holds a {ckpt.kind!r} model, not a slice classifier", 409
        )
    s = ckpt.spec
    spec = PositionSpec(
        channels=tuple(s["channels"]),
        window=int(s["window"]),
        spacing_mm=float(s["spacing_mm"]),
        classes=tuple(s.get("classes", POSITIONS)),
    )
    model = spec.build().to(device)
    model.load_state_dict(ckpt.state_dict)
    model.eval()
    return model, ckpt.record


@torch.no_grad()
def predict_positions(
    model: PositionNet, x: torch.Tensor, place: torch.Tensor, device: str, batch: int = 64
) -> Tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, classes), position (N,))`` for :func:`stack_inputs` tensors."""
    model.eval()
    k = len(model.spec.classes)
    outs = [
        model(x[i : i + batch].to(device), place[i : i + batch].to(device)).float().cpu()
        for i in range(0, len(x), batch)
    ]
    out = torch.cat(outs) if outs else torch.zeros((0, k + 1))
    return torch.softmax(out[:, :k], dim=1).numpy().astype(np.float64), out[:, -1].numpy().astype(np.float64)


def slice_report(probabilities: np.ndarray, position: np.ndarray) -> Dict[str, Any]:
    """The infer JSON for one frame: per slice the three probabilities, the predicted class and the position."""
    slices: List[Dict[str, Any]] = []
    for k, (p, t) in enumerate(zip(probabilities, position)):
        slices.append(
            {
                "slice": k,
                "probabilities": {name: round(float(v), 4) for name, v in zip(POSITIONS, p)},
                "position": POSITIONS[int(np.argmax(p))],
                "continuous_position": round(float(t), 4),
            }
        )
    in_lv = [s["slice"] for s in slices if s["position"] == "in_lv"]
    first: Optional[int] = min(in_lv) if in_lv else None
    last: Optional[int] = max(in_lv) if in_lv else None
    return {"slices": slices, "in_lv": {"first": first, "last": last, "count": len(in_lv)}}


class PositionClassifier:
    """The served slice-position model, loaded once and again only when its checkpoint changes.

    Args:
        checkpoint: checkpoint path (may not exist yet).
        device: inference device; CUDA when present by default.
    """

    def __init__(self, checkpoint: str, *, device: Optional[str] = None):
        self.checkpoint = checkpoint
        self.device = default_device(device)
        self.served = ServedModel(checkpoint, lambda path: load_position(path, self.device))

    def model(self) -> Optional[Tuple[PositionNet, Dict[str, Any]]]:
        """The network and its record; ``None`` before one is trained."""
        return self.served.get()

    def classify(self, image: sitk.Image, frame: int = 0) -> Dict[str, Any]:
        """:func:`slice_report` of one frame, with the model record.

        Raises:
            CMRAssistError (409): no slice-position model has been trained yet.
        """
        loaded = self.model()
        if loaded is None:
            raise CMRAssistError(
                "No slice-position model has been trained yet: rank slices, set the cut points, then "
                "POST /train/slice_position.",
                409,
            )
        model, record = loaded
        x, place = stack_inputs(frame_stack(image, model.spec, frame), model.spec)
        probabilities, position = predict_positions(model, x, place, self.device)
        return {
            **slice_report(probabilities, position),
            "model": {"trained_at": record.get("trained_at"), "val": record.get("val")},
        }


def clear_outside_lv(labels: np.ndarray, image: sitk.Image, classifier: "PositionClassifier") -> List[List[int]]:
    """Empty, in place, the slices of ``labels`` (``(z, y, x)`` or ``(t, z, y, x)``) that lie outside the LV.

    Returns, per frame, the canonical slice indices that were cleared.
    """
    orientation = Orientation.of(image)
    frames = labels[None] if labels.ndim == 3 else labels
    cleared = []
    for f in range(frames.shape[0]):
        report = classifier.classify(image, f)
        outside = [s["slice"] for s in report["slices"] if s["position"] != "in_lv"]
        canonical = orientation.to_canonical(frames[f])
        canonical[outside] = 0
        frames[f] = orientation.from_canonical(canonical)
        cleared.append(outside)
    return cleared
