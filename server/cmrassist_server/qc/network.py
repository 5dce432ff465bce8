"""The QC network: image slice + one-hot segmentation in, per-class slice Dice and MVSF out; its checkpoints."""

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from cmrassist_server.core import checkpoints
from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.preprocess import PreprocessConfig, crop_or_pad

KIND = "qc"
NUM_CLASSES = 4


@dataclass(frozen=True)
class QCSpec:
    """Architecture and input window of the QC network.

    Args:
        channels: feature maps of the strided convolution stages.
        window: input edge in pixels at the preprocessing spacing (128 at 1.5 mm = 192 mm, the whole heart).
        num_classes: classes of the checked segmentation, background included.
        model_inputs: also take the segmentation network's probabilities (channels) and its agreement with the
            checked label (per-slice features), see ``qc/model_view.py``.
        disagreement: with ``model_inputs``, also the segmentation passes' disagreement per slice and class (an
            ensemble's members and their flips; ``segmentation/views.ModelView``).
        view: with ``model_inputs``, which view it takes (``qc/model_view.py``): ``segmentation-pass`` (the
            segmentation pass's own, kept from it) or, for models published before that, ``full-slice``.
    """

    channels: Tuple[int, ...] = (16, 32, 64, 128, 256)
    window: int = 128
    num_classes: int = NUM_CLASSES
    model_inputs: bool = False
    disagreement: bool = False
    view: str = "segmentation-pass"

    @property
    def in_channels(self) -> int:
        return 1 + self.num_classes * (2 if self.model_inputs else 1)

    @property
    def n_features(self) -> int:
        return (3 if self.disagreement else 2) * self.num_classes if self.model_inputs else 0

    def build(self) -> "QCNet":
        return QCNet(self)


class QCNet(nn.Module):
    """Strided conv stages, global pooling and a small head.

    Output ``(N, 2 * classes)``: slice Dice per class in [0, 1] (sigmoid), then MVSF per class in [-2, 2]
    (``2 tanh``), the ranges the true values live in.
    """

    def __init__(self, spec: QCSpec):
        super().__init__()
        self.spec = spec
        layers, c_in = [], spec.in_channels
        for c in spec.channels:
            # Batch norm, not instance norm: instance norm zero-means every map per slice, and the global pooling
            # that follows would then lose how much of a feature (e.g. a boundary mismatch) a slice holds.
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1),
                nn.BatchNorm2d(c),
                nn.LeakyReLU(0.1),
                nn.Conv2d(c, c, 3, padding=1),
                nn.BatchNorm2d(c),
                nn.LeakyReLU(0.1),
            ]
            c_in = c
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        # The agreement features join the pooled image features (they already say much of a slice's quality).
        self.head = nn.Sequential(
            nn.Linear(c_in + spec.n_features, 128), nn.LeakyReLU(0.1), nn.Linear(128, 2 * spec.num_classes)
        )

    def forward(self, x: torch.Tensor, features: Optional[torch.Tensor] = None) -> torch.Tensor:
        pooled = self.features(x)
        out = self.head(torch.cat([pooled, features], 1) if self.spec.n_features else pooled)
        k = self.spec.num_classes
        return torch.cat([torch.sigmoid(out[:, :k]), 2 * torch.tanh(out[:, k:])], dim=1)


def window_center(segmentation: np.ndarray) -> Tuple[float, float]:
    """Centre of the QC window: the segmentation's foreground centroid over all slices (image centre if empty).

    One centre per frame, so that a slice whose segmentation is missing or displaced is still seen in place.
    """
    fg = np.argwhere(segmentation > 0)
    if len(fg):
        return tuple(fg[:, 1:].mean(0))  # type: ignore[return-value]
    return (segmentation.shape[1] / 2, segmentation.shape[2] / 2)


def qc_input(
    image: np.ndarray,
    segmentation: np.ndarray,
    center: Tuple[float, float],
    window: int,
    probs: Optional[np.ndarray] = None,
    num_classes: int = NUM_CLASSES,
    disagreement: Optional[np.ndarray] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """QC network inputs of a frame's slices, cropped at ``center``: ``(slices, channels, window, window)`` (the
    normalised image, the one-hot segmentation, and with ``probs`` the segmentation network's probabilities) and,
    with ``probs``, the ``(slices, features)`` agreement features (``qc/model_view.py``).

    Args:
        image: ``(slices, H, W)`` normalised image at the preprocessing spacing.
        segmentation: ``(slices, H, W)`` labels on the same grid.
        center: window centre (row, column).
        window: window edge in pixels.
        probs: ``(slices, classes, H, W)`` the segmentation network's probabilities on the same grid.
        num_classes: classes of the checked segmentation, background included.
        disagreement: ``(slices, classes)`` the segmentation passes' disagreement, appended to the features.
    """
    from cmrassist_server.qc.model_view import window_inputs

    img, _ = crop_or_pad(image.astype(np.float32), center, (window, window))
    seg, _ = crop_or_pad(segmentation.astype(np.int64), center, (window, window))
    onehot = np.stack([seg == c for c in range(num_classes)], axis=1).astype(np.float32)
    channels, features = [img[:, None], onehot], None
    if probs is not None:
        probs_window, features = window_inputs(probs, seg, center, window, disagreement)
        channels.append(probs_window)
    x = torch.from_numpy(np.concatenate(channels, axis=1))
    return x, (torch.from_numpy(features) if features is not None else None)


@dataclass
class QCModel:
    """A loaded QC checkpoint: the network (eval mode), the preprocessing it saw and its record."""

    network: "QCNet"
    preprocess: PreprocessConfig
    record: Dict[str, Any]


def publish_qc(path: str, model: "QCNet", preprocess: PreprocessConfig, record: ModelRecord) -> None:
    """Publish a QC network through the one checkpoint format."""
    checkpoints.publish(path, model, record, spec=asdict(model.spec), preprocess=asdict(preprocess))


def load_qc(path: str, device: str = "cpu") -> QCModel:
    """Load a published QC checkpoint onto ``device``."""
    ckpt = checkpoints.load(path, device, kind=KIND)
    spec = QCSpec(
        channels=tuple(ckpt.spec["channels"]),
        window=int(ckpt.spec["window"]),
        num_classes=int(ckpt.spec["num_classes"]),
        model_inputs=bool(ckpt.spec.get("model_inputs", False)),
        disagreement=bool(ckpt.spec.get("disagreement", False)),  # QC models published before it had none
        view=str(ckpt.spec.get("view", "full-slice")),  # and took the view of whole slices
    )
    if spec.view not in ("segmentation-pass", "full-slice"):
        raise CMRAssistError(f"QC model {path} takes an unknown view {spec.view!r}: retrain it or restore it", 409)
    model = spec.build().to(device)
    model.load_state_dict(ckpt.state_dict)
    model.eval()
    return QCModel(model, PreprocessConfig.from_dict(ckpt.preprocess or {}), ckpt.record)


@torch.no_grad()
def predict_slices(
    model: QCNet, inputs: torch.Tensor, device: str, features: Optional[torch.Tensor] = None, batch: int = 32
) -> Tuple[np.ndarray, np.ndarray]:
    """Predicted ``(slice_dice, slice_mvsf)``, each ``(slices, classes)``, for :func:`qc_input` tensors."""
    outs = []
    for start in range(0, len(inputs), batch):
        part = features[start : start + batch].to(device) if features is not None else None
        outs.append(model(inputs[start : start + batch].to(device), part).float().cpu())
    out = torch.cat(outs).numpy() if outs else np.zeros((0, 2 * model.spec.num_classes), np.float32)
    k = model.spec.num_classes
    return out[:, :k].astype(np.float64), out[:, k:].astype(np.float64)
