"""The QC network: image slice + one-hot segmentation in, per-class slice Dice and MVSF out; its checkpoints."""

from dataclasses import asdict, dataclass
from typing import Any, Dict, Tuple

import numpy as np
import torch
from torch import nn

from .network import _atomic_write, record_path
from .preprocess import PreprocessConfig, crop_or_pad

NUM_CLASSES = 4


@dataclass(frozen=True)
class QCSpec:
    """Architecture and input window of the QC network.

    Args:
        channels: feature maps of the strided convolution stages.
        window: input edge in pixels at the preprocessing spacing (128 at 1.5 mm = 192 mm, the whole heart).
        num_classes: classes of the checked segmentation, background included.
    """

    channels: Tuple[int, ...] = (16, 32, 64, 128, 256)
    window: int = 128
    num_classes: int = NUM_CLASSES

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
        layers, c_in = [], 1 + spec.num_classes
        for c in spec.channels:
            # Batch norm, not instance norm: instance norm zero-means every map per slice, and the global pooling
            # that follows would then lose how much of a feature (e.g. a boundary mismatch) a slice holds.
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU(0.1),
                       nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU(0.1)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 128), nn.LeakyReLU(0.1),
                                  nn.Linear(128, 2 * spec.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(x))
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


def qc_input(image: np.ndarray, segmentation: np.ndarray, center: Tuple[float, float], window: int,
             num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """``(slices, 1 + classes, window, window)``: normalised image and one-hot segmentation, cropped at ``center``.

    Args:
        image: ``(slices, H, W)`` normalised image at the preprocessing spacing.
        segmentation: ``(slices, H, W)`` labels on the same grid.
        center: window centre (row, column).
        window: window edge in pixels.
    """
    img, _ = crop_or_pad(image.astype(np.float32), center, (window, window))
    seg, _ = crop_or_pad(segmentation.astype(np.int64), center, (window, window))
    onehot = np.stack([seg == c for c in range(num_classes)], axis=1).astype(np.float32)
    return torch.from_numpy(np.concatenate([img[:, None], onehot], axis=1))


def publish_qc(path: str, model: QCNet, preprocess: PreprocessConfig, record: Dict[str, Any]) -> None:
    """Write the QC checkpoint and its JSON record atomically."""
    import json

    payload = {"state_dict": model.state_dict(), "qc_spec": asdict(model.spec), "preprocess": asdict(preprocess),
               "record": record}
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    _atomic_write(record_path(path), lambda tmp: open(tmp, "w").write(json.dumps(record, indent=2)))


def load_qc(path: str, device: str = "cpu") -> Tuple[QCNet, PreprocessConfig, Dict[str, Any]]:
    """The QC network (eval mode), its preprocessing and its record."""
    payload = torch.load(path, map_location=device, weights_only=False)
    s = payload["qc_spec"]
    spec = QCSpec(channels=tuple(s["channels"]), window=int(s["window"]), num_classes=int(s["num_classes"]))
    model = spec.build().to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    pre = payload["preprocess"]
    return model, PreprocessConfig(**{**pre, "percentiles": tuple(pre["percentiles"])}), payload.get("record", {})


@torch.no_grad()
def predict_slices(model: QCNet, inputs: torch.Tensor, device: str, batch: int = 32) -> Tuple[np.ndarray, np.ndarray]:
    """Predicted ``(slice_dice, slice_mvsf)``, each ``(slices, classes)``, for ``qc_input`` tensors."""
    outs = []
    for start in range(0, len(inputs), batch):
        outs.append(model(inputs[start : start + batch].to(device)).float().cpu())
    out = torch.cat(outs).numpy() if outs else np.zeros((0, 2 * model.spec.num_classes), np.float32)
    k = model.spec.num_classes
    return out[:, :k].astype(np.float64), out[:, k:].astype(np.float64)
